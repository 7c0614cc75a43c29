"""Answers for source/02_higher_order/higher_order (Hessians, HVPs, stop_gradient, MAML, ...)."""

from . import PATCH_COMPARISONS, Answer, attacks_on_the_checks, calls_the_builtin, tampering_of


def _hutchinson(distribution="rademacher", hvp="jax.jvp(jax.grad(f), (x,), (v,))[1]",
                average="jnp.mean"):
    """hutchinson_trace as the reference writes it, but for the parts named: the distribution of
    the probes, the product of the Hessian with a probe v, and how the samples are combined."""
    return f"""
def hutchinson_trace(f, x, key, num_samples):
    probes = jax.random.{distribution}(key, (num_samples,) + x.shape, dtype=x.dtype)
    hvp = lambda v: {hvp}
    return {average}(jax.vmap(lambda v: jnp.vdot(v, hvp(v)))(probes))
"""


WRONG = [
    calls_the_builtin("hessian", "hessian"),
    Answer("hessian", "calls the built-in through JAX's private module", """
        import jax._src.api

        def hessian(f):
            return jax._src.api.hessian(f)
    """, says="hessian must not call jax.hessian."),
    Answer("hessian", "reverse-over-reverse instead of forward-over-reverse", """
        def hessian(f):
            return jax.jacrev(jax.jacrev(f))
    """,
        says='hessian must be forward-over-reverse (jax.jvp or jacfwd outside, jax.grad'),
    Answer("hessian", "reverse-over-forward", """
        def hessian(f):
            return jax.jacrev(jax.jacfwd(f))
    """,
        says='hessian must be forward-over-reverse (jax.jvp or jacfwd outside, jax.grad'),
    Answer("hessian", "the first derivative instead of the second", """
        def hessian(f):
            return jax.jacfwd(f)
    """, says='shape (3,), expected (3, 3).'),
    Answer("hessian", "hard-coded: twice the identity, right only for sum(x**2)", """
        def hessian(f):
            return lambda x: 2 * jnp.eye(x.size).reshape(x.shape + x.shape)
    """,
        says='hessian(f) is wrong for f(x) = sum(x**3), x of shape (3,)'),
    Answer("hvp", "reverse-over-reverse with a dot product: single arrays only", """
        def hvp(f, primals, tangents):
            (x,), (v,) = primals, tangents
            return jax.grad(lambda x: jnp.vdot(jax.grad(f)(x), v))(x)
    """,
        says='vdot requires ndarray or scalar arguments'),
    Answer("hvp", "materializes the dense Hessian", """
        def hvp(f, primals, tangents):
            (x,), (v,) = primals, tangents
            H = jax.hessian(f)(x)
            return jnp.tensordot(H, v, axes=v.ndim)
    """,
        says='hvp must not call jax.hessian.'),
    Answer("hvp", "returns the (gradient, HVP) pair of jax.jvp", """
        def hvp(f, primals, tangents):
            return jax.jvp(jax.grad(f), primals, tangents)
    """,
        says='hvp returned a tuple of 2 (a float32 array of shape (3,), a float32 array'),
    Answer("hvp", "returns the gradient instead of the HVP", """
        def hvp(f, primals, tangents):
            return jax.jvp(jax.grad(f), primals, tangents)[0]
    """,
        says='hvp is wrong for f(x) = sum(x**3), x of shape (3,)'),
    Answer("hvp", "finite differences of the gradient", """
        def hvp(f, primals, tangents):
            (x,), (v,) = primals, tangents
            eps = 1e-3
            shifted = jax.tree.map(lambda a, b: a + eps * b, x, v)
            return jax.tree.map(lambda a, b: (a - b) / eps, jax.grad(f)(shifted), jax.grad(f)(x))
    """,
        says='hvp is wrong for f(x) = sum(x**3), x of shape (3,)'),
    Answer("td_update", "no stop_gradient: differentiates through the target", """
        def td_update(theta, s_tm1, r_t, s_t):
            def pseudo_loss(theta):
                target = r_t + value_fn(theta, s_t)
                return -0.5 * (target - value_fn(theta, s_tm1)) ** 2
            return jax.grad(pseudo_loss)(theta)
    """,
        says="The update is (r_t + v(s_t) - v(s_tm1)) * grad v(s_tm1); is the target's"),
    Answer("td_update", "hard-coded closed form of the linear value function", """
        def td_update(theta, s_tm1, r_t, s_t):
            return (r_t + jnp.dot(theta, s_t) - jnp.dot(theta, s_tm1)) * s_tm1
    """,
        says='td_update differentiates through the target: wrap the target r_t + v(s_t)'),
    Answer("td_update", "the gradient of the squared error, not the update (sign)", """
        def td_update(theta, s_tm1, r_t, s_t):
            def loss(theta):
                target = jax.lax.stop_gradient(r_t + value_fn(theta, s_t))
                return 0.5 * (target - value_fn(theta, s_tm1)) ** 2
            return jax.grad(loss)(theta)
    """,
        says='The sign is flipped.'),
    Answer("td_update", "stops the gradient of the prediction instead of the target", """
        def td_update(theta, s_tm1, r_t, s_t):
            def pseudo_loss(theta):
                target = r_t + value_fn(theta, s_t)
                prediction = jax.lax.stop_gradient(value_fn(theta, s_tm1))
                return -0.5 * (target - prediction) ** 2
            return jax.grad(pseudo_loss)(theta)
    """,
        says="The update is (r_t + v(s_t) - v(s_tm1)) * grad v(s_tm1); is the target's"),
    Answer("td_update", "the closed form delta * grad v, with no stop_gradient", """
        def td_update(theta, s_tm1, r_t, s_t):
            delta = r_t + value_fn(theta, s_t) - value_fn(theta, s_tm1)
            return delta * jax.grad(value_fn)(theta, s_tm1)
    """,
        says='td_update differentiates through the target: wrap the target r_t + v(s_t)'),
    Answer("td_update", "a surrogate that stops the whole error, prediction included", """
        def td_update(theta, s_tm1, r_t, s_t):
            def surrogate(theta):
                target = jax.lax.stop_gradient(r_t + value_fn(theta, s_t))
                error = jax.lax.stop_gradient(target - value_fn(theta, s_tm1))
                return error * value_fn(theta, s_tm1)
            return jax.grad(surrogate)(theta)
    """,
        says='td_update stops the prediction v(s_tm1) too: only the target r_t + v(s_t)'),
    Answer("straight_through_round", "rounds with a NumPy callback that has no vmap rule", """
        def straight_through_round(x):
            rounded = jax.pure_callback(np.round, jax.ShapeDtypeStruct(x.shape, x.dtype),
                                        jax.lax.stop_gradient(x))
            return x + jax.lax.stop_gradient(rounded - x)
    """,
        says='jax.vmap(straight_through_round) calls jax.pure_callback (NumPy code)'),
    Answer("straight_through_round", "plain rounding: zero gradient", """
        def straight_through_round(x):
            return jnp.round(x)
    """,
        says='The backward pass must treat rounding as the identity.'),
    Answer("straight_through_round", "adds the rounded value to x instead of the difference", """
        def straight_through_round(x):
            return x + jax.lax.stop_gradient(jnp.round(x))
    """,
        says='straight_through_round is wrong for x of shape (4,)'),
    Answer("straight_through_round", "a custom_vjp: the gradient is right but JVPs raise", """
        @jax.custom_vjp
        def straight_through_round(x):
            return jnp.round(x)

        straight_through_round.defvjp(lambda x: (jnp.round(x), None), lambda _, g: (g,))
    """,
        says='straight_through_round was differentiated in forward mode (jax.jvp'),
    Answer("straight_through_round", "stops the gradient of the wrong term", """
        def straight_through_round(x):
            return jnp.round(x) + jax.lax.stop_gradient(x - jnp.round(x))
    """,
        says='straight_through_round is wrong for x of shape (4,)'),
    Answer("perex_grads", "the gradient of the mean loss, not one per example", """
        def perex_grads(loss, params, xs, ys):
            mean_loss = lambda p: jnp.mean(jax.vmap(loss, in_axes=(None, 0, 0))(p, xs, ys))
            return jax.grad(mean_loss)(params)
    """,
        says='shape (), expected (4,).'),
    Answer("perex_grads", "Python loop over the examples", """
        def perex_grads(loss, params, xs, ys):
            grads = [jax.grad(loss)(params, x, y) for x, y in zip(xs, ys)]
            return jax.tree.map(lambda *g: jnp.stack(g), *grads)
    """,
        says='perex_grads builds a program whose size grows with the number of vectors'),
    Answer("perex_grads", "maps over the parameters too (in_axes=0)", """
        def perex_grads(loss, params, xs, ys):
            return jax.vmap(jax.grad(loss))(params, xs, ys)
    """,
        says='perex_grads asks jax.vmap to map an argument of rank 0 along axis 0'),
    Answer("maml_grad", "first-order MAML: stops the gradient of the inner step", """
        def maml_grad(loss, params, train_batch, test_batch, lr):
            def meta_loss(p):
                g = jax.lax.stop_gradient(jax.grad(loss)(p, train_batch))
                return loss(jax.tree.map(lambda a, b: a - lr * b, p, g), test_batch)
            return jax.grad(meta_loss)(params)
    """,
        says='Differentiate through the inner step (no stop_gradient), evaluate the'),
    Answer("maml_grad", "evaluates the adapted parameters on the training batch", """
        def maml_grad(loss, params, train_batch, test_batch, lr):
            def meta_loss(p):
                g = jax.grad(loss)(p, train_batch)
                return loss(jax.tree.map(lambda a, b: a - lr * b, p, g), train_batch)
            return jax.grad(meta_loss)(params)
    """,
        says='Differentiate through the inner step (no stop_gradient), evaluate the'),
    Answer("maml_grad", "the plain test gradient at the adapted parameters", """
        def maml_grad(loss, params, train_batch, test_batch, lr):
            g = jax.grad(loss)(params, train_batch)
            adapted = jax.tree.map(lambda a, b: a - lr * b, params, g)
            return jax.grad(loss)(adapted, test_batch)
    """,
        says='Differentiate through the inner step (no stop_gradient), evaluate the'),
    Answer("maml_grad", "steps up the gradient in the inner update", """
        def maml_grad(loss, params, train_batch, test_batch, lr):
            def meta_loss(p):
                g = jax.grad(loss)(p, train_batch)
                return loss(jax.tree.map(lambda a, b: a + lr * b, p, g), test_batch)
            return jax.grad(meta_loss)(params)
    """,
        says='Differentiate through the inner step (no stop_gradient), evaluate the'),
    Answer("hutchinson_trace", "the exact trace of the dense Hessian", """
        def hutchinson_trace(f, x, key, num_samples):
            return jnp.trace(jax.hessian(f)(x))
    """,
        says='hutchinson_trace must not call jax.hessian.'),
    Answer("hutchinson_trace", "Gaussian probes instead of Rademacher ones", _hutchinson("normal"),
        says='Draw the probes exactly as the statement says, then average v . (H v).'),
    Answer("hutchinson_trace", "sums the samples instead of averaging them",
           _hutchinson(average="jnp.sum"),
        says='Every value is 8 times the expected one: a factor is missing or extra.'),
    Answer("hutchinson_trace", "reverse-over-reverse HVPs",
           _hutchinson(hvp="jax.grad(lambda y: jnp.vdot(jax.grad(f)(y), v))(x)"),
        says='hutchinson_trace must be forward-over-reverse (jax.jvp or jacfwd outside'),
    Answer("hutchinson_trace", "splits the key into one key per probe", """
        def hutchinson_trace(f, x, key, num_samples):
            keys = jax.random.split(key, num_samples)
            probes = jax.vmap(lambda k: jax.random.rademacher(k, x.shape, dtype=x.dtype))(keys)
            hvp = lambda v: jax.jvp(jax.grad(f), (x,), (v,))[1]
            return jnp.mean(jax.vmap(lambda v: jnp.vdot(v, hvp(v)))(probes))
    """,
        says='Draw the probes exactly as the statement says, then average v . (H v).'),
]

ALTERNATIVES = [
    Answer("hessian", "jacfwd of jax.grad", """
        def hessian(f):
            return jax.jacfwd(jax.grad(f))
    """),
    Answer("hvp", "linearize the gradient, then apply the linear map", """
        def hvp(f, primals, tangents):
            _, hessian_times = jax.linearize(jax.grad(f), *primals)
            return hessian_times(*tangents)
    """),
    Answer("td_update", "the error with only the target stopped, times grad v", """
        def td_update(theta, s_tm1, r_t, s_t):
            target = jax.lax.stop_gradient(r_t + value_fn(theta, s_t))
            prediction, grad_prediction = jax.value_and_grad(value_fn)(theta, s_tm1)
            return (target - prediction) * grad_prediction
    """),
    Answer("straight_through_round", "x - stop_gradient(x) + stop_gradient(round(x))", """
        def straight_through_round(x):
            zero = x - jax.lax.stop_gradient(x)
            return zero + jax.lax.stop_gradient(jnp.round(x))
    """),
    Answer("straight_through_round", "a custom_jvp whose tangent passes through", """
        @jax.custom_jvp
        def straight_through_round(x):
            return jnp.round(x)

        @straight_through_round.defjvp
        def _straight_through_jvp(primals, tangents):
            return jnp.round(primals[0]), tangents[0]
    """),
    Answer("perex_grads", "jacrev of the vector of per-example losses", """
        def perex_grads(loss, params, xs, ys):
            losses = lambda p: jax.vmap(loss, in_axes=(None, 0, 0))(p, xs, ys)
            return jax.jacrev(losses)(params)
    """),
    Answer("maml_grad", "chain rule by hand: (I - lr H_train) applied to the test gradient", """
        def maml_grad(loss, params, train_batch, test_batch, lr):
            train_grad = lambda p: jax.grad(loss)(p, train_batch)
            adapted = jax.tree.map(lambda a, b: a - lr * b, params, train_grad(params))
            g = jax.grad(loss)(adapted, test_batch)
            hg = jax.jvp(train_grad, (params,), (g,))[1]
            return jax.tree.map(lambda a, b: a - lr * b, g, hg)
    """),
    Answer("hutchinson_trace", "einsum over the vmapped HVPs", """
        def hutchinson_trace(f, x, key, num_samples):
            probes = jax.random.rademacher(key, (num_samples,) + x.shape, dtype=x.dtype)
            products = jax.vmap(lambda v: jax.jvp(jax.grad(f), (x,), (v,))[1])(probes)
            return jnp.einsum("i...,i...->", probes, products) / num_samples
    """),
]



WRONG += [
    Answer("top_eigenvalue", "returns the norm of H v, which loses the sign", """
        def top_eigenvalue(f, x, v0, num_iters):
            hv = lambda v: jax.jvp(jax.grad(f), (x,), (v,))[1]
            v = jax.lax.fori_loop(0, num_iters, lambda _, v: hv(v) / jnp.linalg.norm(hv(v)),
                                  v0 / jnp.linalg.norm(v0))
            return jnp.linalg.norm(hv(v))
        """, says="the sign lost"),
    Answer("top_eigenvalue", "builds the Hessian and takes its eigenvalues", """
        def top_eigenvalue(f, x, v0, num_iters):
            H = jax.hessian(f)(x).reshape(x.size, x.size)
            eigenvalues = jnp.linalg.eigvalsh(H)
            return eigenvalues[jnp.argmax(jnp.abs(eigenvalues))]
        """, says="top_eigenvalue must not call jax.hessian."),
    Answer("top_eigenvalue", "a Python loop over the iterations", """
        def top_eigenvalue(f, x, v0, num_iters):
            hv = lambda v: jax.jvp(jax.grad(f), (x,), (v,))[1]
            v = v0 / jnp.linalg.norm(v0)
            for _ in range(num_iters):
                w = hv(v)
                v = w / jnp.linalg.norm(w)
            return jnp.vdot(v, hv(v))
        """, says="grows with num_iters"),
    Answer("top_eigenvalue", "reverse-over-reverse HVPs", """
        def top_eigenvalue(f, x, v0, num_iters):
            hv = lambda v: jax.grad(lambda x: jnp.vdot(jax.grad(f)(x), v))(x)
            v = jax.lax.fori_loop(0, num_iters, lambda _, v: hv(v) / jnp.linalg.norm(hv(v)),
                                  v0 / jnp.linalg.norm(v0))
            return jnp.vdot(v, hv(v))
        """, says="must be forward-over-reverse"),
    Answer("top_eigenvalue", "the Rayleigh quotient of the unnormalized start vector", """
        def top_eigenvalue(f, x, v0, num_iters):
            hv = lambda v: jax.jvp(jax.grad(f), (x,), (v,))[1]
            v = jax.lax.fori_loop(0, num_iters, lambda _, v: hv(v) / jnp.linalg.norm(hv(v)), v0)
            return jnp.vdot(v0, hv(v0))
        """, says="top_eigenvalue is wrong for"),
]

ALTERNATIVES += [
    Answer("top_eigenvalue", "the Rayleigh quotient divided by v . v, one HVP per step", """
        def top_eigenvalue(f, x, v0, num_iters):
            def hv(v):
                return jax.jvp(lambda x: jax.grad(f)(x), (x,), (v,))[1]

            def step(_, v):
                w = hv(v)
                return w / jnp.sqrt(jnp.sum(w * w))

            v = jax.lax.fori_loop(0, num_iters, step, v0)
            return jnp.sum(v * hv(v)) / jnp.sum(v * v)
        """),
    Answer("top_eigenvalue", "a lax.scan over the iterations", """
        def top_eigenvalue(f, x, v0, num_iters):
            def hessian_times(v):
                return jax.jvp(jax.grad(f), (x,), (v,))[1]

            def step(v, _):
                w = hessian_times(v)
                return w / jnp.linalg.norm(w), None

            v, _ = jax.lax.scan(step, v0 / jnp.linalg.norm(v0), None, length=num_iters)
            return jnp.vdot(v, hessian_times(v))
        """),
]


_UNSTOP_GRADIENTS = """
jax.lax.stop_gradient = lambda x: x
"""

TAMPERING = [
    tampering_of("disables jax.lax.stop_gradient to make a wrong answer look right",
                 _UNSTOP_GRADIENTS, WRONG,
                 "stops the gradient of the prediction instead of the target"),
    tampering_of("patches numpy's comparisons", PATCH_COMPARISONS, WRONG,
                 "first-order MAML: stops the gradient of the inner step"),
]

TAMPERING += attacks_on_the_checks(WRONG)
