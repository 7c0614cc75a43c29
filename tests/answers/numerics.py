"""Answers for source/06_numerics/numerics (autodiff meets numerics)."""

from . import PATCH_COMPARISONS, Answer, attacks_on_the_checks, tampering_of


def _sym_exp(kernel):
    """sym_exp with the reference's forward pass and a bwd rule whose divided differences K
    are computed by ``kernel`` (from w, V and G)."""
    return """
        @jax.custom_vjp
        def sym_exp(A):
            w, V = jnp.linalg.eigh(A)
            return (V * jnp.exp(w)) @ V.T

        def sym_exp_fwd(A):
            w, V = jnp.linalg.eigh(A)
            return (V * jnp.exp(w)) @ V.T, (w, V)

        def sym_exp_bwd(residuals, G):
            w, V = residuals
            gap = w[:, None] - w[None, :]
    """ + kernel + """
            return (V @ (K * (V.T @ G @ V)) @ V.T,)

        sym_exp.defvjp(sym_exp_fwd, sym_exp_bwd)
    """


def _spd_solve(fwd, bwd, register="spd_solve.defvjp(spd_solve_fwd, spd_solve_bwd, "
               "symbolic_zeros=True)"):
    """spd_solve with the reference's primal function and the given rule."""
    return """
        @jax.custom_vjp
        def spd_solve(A, b):
            return jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(A), True), b)
    """, fwd, bwd, register


_SPD_FWD = """
    def spd_solve_fwd(A, b):
        factor = jnp.linalg.cholesky(A.value)
        x = jax.scipy.linalg.cho_solve((factor, True), b.value)
        return x, (factor, x, A.perturbed)
"""


_ADJOINT_FWD = """
    @functools.partial(jax.custom_vjp, nondiff_argnums=(0, 3, 4))
    def adjoint_solve(f, y0, theta, t1, steps):
        return rk4_solve(f, y0, theta, t1, steps)

    def adjoint_solve_fwd(f, y0, theta, t1, steps):
        y1 = rk4_solve(f, y0, theta, t1, steps)
        return y1, (y1, theta)
"""


def _adjoint(bwd):
    return (_ADJOINT_FWD, bwd, "adjoint_solve.defvjp(adjoint_solve_fwd, adjoint_solve_bwd)")


WRONG = [
    Answer("sym_exp", "no custom rule: differentiates through eigh", """
        def sym_exp(A):
            w, V = jnp.linalg.eigh(A)
            return (V * jnp.exp(w)) @ V.T
        """, says="sym_exp must be a function decorated with @jax.custom_vjp."),
    Answer("sym_exp", "a custom_vjp whose bwd differentiates eigh with jax.vjp", """
        def exp_by_eigh(A):
            w, V = jnp.linalg.eigh(A)
            return (V * jnp.exp(w)) @ V.T

        @jax.custom_vjp
        def sym_exp(A):
            return exp_by_eigh(A)

        def sym_exp_fwd(A):
            return exp_by_eigh(A), A

        def sym_exp_bwd(A, G):
            return jax.vjp(exp_by_eigh, A)[1](G)

        sym_exp.defvjp(sym_exp_fwd, sym_exp_bwd)
        """, says="sym_exp must not call jax.vjp."),
    Answer("sym_exp", "the rule wraps jax.scipy.linalg.expm's own derivative", """
        from jax.scipy.linalg import expm

        @jax.custom_vjp
        def sym_exp(A):
            return expm(A)

        def sym_exp_fwd(A):
            return expm(A), A

        def sym_exp_bwd(A, G):
            n = A.shape[0]
            block = jnp.block([[A, G], [jnp.zeros_like(A), A]])
            return (expm(block)[:n, n:],)

        sym_exp.defvjp(sym_exp_fwd, sym_exp_bwd)
        """, says="sym_exp uses jax.scipy.linalg.expm, which this exercise forbids."),
    Answer("sym_exp", "the plain divided difference: 0 / 0 at ties", _sym_exp("""
            ew = jnp.exp(w)
            K = (ew[:, None] - ew[None, :]) / gap
    """), says="has nan or inf for"),
    Answer("sym_exp", "ties by exact equality, the divided difference without expm1", _sym_exp("""
            ew = jnp.exp(w)
            tied = gap == 0
            K = jnp.where(tied, ew[:, None],
                          (ew[:, None] - ew[None, :]) / jnp.where(tied, 1.0, gap))
    """), says="treat eigenvalues closer than a small relative tolerance as tied"),
    Answer("sym_exp", "only the diagonal of K: f'(w_i), no divided differences", _sym_exp("""
            K = jnp.diag(jnp.exp(w))
    """), says="The rule: with K_ij = (exp(w_i) - exp(w_j)) / (w_i - w_j)"),
    Answer("sym_exp", "V and V^T swapped in the rule", """
        @jax.custom_vjp
        def sym_exp(A):
            w, V = jnp.linalg.eigh(A)
            return (V * jnp.exp(w)) @ V.T

        def sym_exp_fwd(A):
            w, V = jnp.linalg.eigh(A)
            return (V * jnp.exp(w)) @ V.T, (w, V)

        def sym_exp_bwd(residuals, G):
            w, V = residuals
            gap = w[:, None] - w[None, :]
            tied = gap == 0
            K = jnp.where(tied, jnp.exp(w[None, :]),
                          jnp.exp(w[None, :]) * jnp.expm1(gap) / jnp.where(tied, 1.0, gap))
            return (V.T @ (K * (V @ G @ V.T)) @ V,)

        sym_exp.defvjp(sym_exp_fwd, sym_exp_bwd)
        """, says="sym_exp is wrong for a random symmetric 3 x 3 matrix"),
    Answer("spd_solve", "no custom rule: autodiff through cho_solve", """
        def spd_solve(A, b):
            return jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(A), True), b)
        """, says="spd_solve must be a function decorated with @jax.custom_vjp."),
    Answer("spd_solve", "registered without symbolic_zeros=True (fwd reads plain arrays)",
           _spd_solve("""
        def spd_solve_fwd(A, b):
            factor = jnp.linalg.cholesky(A)
            x = jax.scipy.linalg.cho_solve((factor, True), b)
            return x, (factor, x)
        """, """
        def spd_solve_bwd(residuals, g):
            factor, x = residuals
            b_bar = jax.scipy.linalg.cho_solve((factor, True), g)
            return -(b_bar.reshape(x.shape[0], -1) @ x.reshape(x.shape[0], -1).T), b_bar
        """, "spd_solve.defvjp(spd_solve_fwd, spd_solve_bwd)"),
           says="symbolic_zeros=True), as the statement says."),
    Answer("spd_solve", "always computes the cotangent of A", _spd_solve(_SPD_FWD, """
        def spd_solve_bwd(residuals, g):
            factor, x, A_perturbed = residuals
            b_bar = jax.scipy.linalg.cho_solve((factor, True), g)
            return -(b_bar.reshape(x.shape[0], -1) @ x.reshape(x.shape[0], -1).T), b_bar
        """), says="still computes the cotangent of A"),
    Answer("spd_solve", "factors A again in the backward pass", _spd_solve("""
        def spd_solve_fwd(A, b):
            x = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(A.value), True), b.value)
            return x, (A.value, x, A.perturbed)
        """, """
        def spd_solve_bwd(residuals, g):
            A, x, A_perturbed = residuals
            b_bar = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(A), True), g)
            if not A_perturbed:
                return None, b_bar
            return -(b_bar.reshape(x.shape[0], -1) @ x.reshape(x.shape[0], -1).T), b_bar
        """), says="expected one Cholesky factorization"),
    Answer("spd_solve", "jnp.linalg.solve backward: an LU beside the Cholesky", _spd_solve(
        _SPD_FWD, """
        def spd_solve_bwd(residuals, g):
            factor, x, A_perturbed = residuals
            b_bar = jnp.linalg.solve(factor @ factor.T, g)
            if not A_perturbed:
                return None, b_bar
            return -(b_bar.reshape(x.shape[0], -1) @ x.reshape(x.shape[0], -1).T), b_bar
        """), says="1 lu"),
    Answer("spd_solve", "the symmetrised cotangent of A", _spd_solve(_SPD_FWD, """
        def spd_solve_bwd(residuals, g):
            factor, x, A_perturbed = residuals
            b_bar = jax.scipy.linalg.cho_solve((factor, True), g)
            if not A_perturbed:
                return None, b_bar
            outer = b_bar.reshape(x.shape[0], -1) @ x.reshape(x.shape[0], -1).T
            return -(outer + outer.T) / 2, b_bar
        """), says="This is the symmetrised cotangent"),
    Answer("spd_solve", "the cotangent of A is x b_bar^T, transposed and unsigned",
           _spd_solve(_SPD_FWD, """
        def spd_solve_bwd(residuals, g):
            factor, x, A_perturbed = residuals
            b_bar = jax.scipy.linalg.cho_solve((factor, True), g)
            if not A_perturbed:
                return None, b_bar
            return x.reshape(x.shape[0], -1) @ b_bar.reshape(x.shape[0], -1).T, b_bar
        """), says="The rule: with x = A^-1 b"),
    Answer("adjoint_solve", "no custom rule: differentiates the RK4 steps", """
        def adjoint_solve(f, y0, theta, t1, steps):
            return rk4_solve(f, y0, theta, t1, steps)
        """, says="adjoint_solve must be a function decorated with @jax.custom_vjp."),
    Answer("adjoint_solve", "the rule is jax.vjp of the forward solve", _adjoint("""
        def adjoint_solve_fwd(f, y0, theta, t1, steps):
            y1, pullback = jax.vjp(lambda y0, theta: rk4_solve(f, y0, theta, t1, steps),
                                   y0, theta)
            return y1, pullback

        def adjoint_solve_bwd(f, t1, steps, pullback, w):
            return pullback(w)
        """), says="it differentiates the discretisation"),
    Answer("adjoint_solve", "the adjoint integrated by explicit Euler steps", _adjoint("""
        def adjoint_solve_bwd(f, t1, steps, residuals, w):
            y1, theta = residuals
            h = t1 / steps

            def step(_, state):
                y, a, theta_bar = state
                dy, pullback = jax.vjp(f, y, theta)
                a_y, a_theta = pullback(a)
                return y - h * dy, a + h * a_y, theta_bar + h * a_theta

            _, a0, theta_bar = jax.lax.fori_loop(0, steps, step,
                                                 (y1, w, jnp.zeros_like(theta)))
            return a0, theta_bar
        """), says="The adjoint method: from y(t1)"),
    Answer("adjoint_solve", "integrates the adjoint forwards in time (+h)", _adjoint("""
        def adjoint_solve_bwd(f, t1, steps, residuals, w):
            y1, theta = residuals

            def augmented(state, theta):
                y, a, _ = state
                dy, pullback = jax.vjp(f, y, theta)
                a_y, a_theta = pullback(a)
                return dy, -a_y, -a_theta

            h = t1 / steps
            _, a0, theta_bar = jax.lax.fori_loop(
                0, steps, lambda _, s: rk4_step(augmented, s, theta, h),
                (y1, w, jnp.zeros_like(theta)))
            return a0, theta_bar
        """), says="The adjoint method: from y(t1)"),
    Answer("adjoint_solve", "keeps y frozen at y(t1) on the way back", _adjoint("""
        def adjoint_solve_bwd(f, t1, steps, residuals, w):
            y1, theta = residuals

            def augmented(state, theta):
                a, _ = state
                _, pullback = jax.vjp(f, y1, theta)
                a_y, a_theta = pullback(a)
                return -a_y, -a_theta

            h = t1 / steps
            a0, theta_bar = jax.lax.fori_loop(
                0, steps, lambda _, s: rk4_step(augmented, s, theta, -h),
                (w, jnp.zeros_like(theta)))
            return a0, theta_bar
        """), says="The adjoint method: from y(t1)"),
    Answer("score_surrogate", "the usual surrogate mean(values * log p): right gradient, "
           "wrong value", """
        def score_surrogate(logits, samples, values):
            return jnp.mean(values * jax.nn.log_softmax(logits)[samples])
        """, says="but its value is not the estimate mean(values)"),
    Answer("score_surrogate", "stop_gradient on both terms of the magic box", """
        def score_surrogate(logits, samples, values):
            log_p = jax.lax.stop_gradient(jax.nn.log_softmax(logits)[samples])
            return jnp.mean(jnp.exp(log_p - log_p) * values)
        """, says="The gradient is zero"),
    Answer("score_surrogate", "the stop_gradient on the wrong term: the sign flips", """
        def score_surrogate(logits, samples, values):
            log_p = jax.nn.log_softmax(logits)[samples]
            return jnp.mean(jnp.exp(jax.lax.stop_gradient(log_p) - log_p) * values)
        """, says="The sign is flipped."),
    Answer("score_surrogate", "log of the probabilities of the logits, not of the softmax", """
        def score_surrogate(logits, samples, values):
            log_p = jnp.log(jnp.exp(logits[samples]))
            return jnp.mean(jnp.exp(log_p - jax.lax.stop_gradient(log_p)) * values)
        """, says="the gradient of score_surrogate in the logits is wrong"),
    Answer("score_gradient", "the baseline is the mean of all the samples, its own included", """
        def score_gradient(f, key, mu, log_sigma, n):
            sigma = jnp.exp(log_sigma)
            eps = jax.random.normal(key, (n,), mu.dtype)
            values = f(mu + sigma * eps)
            centred = values - jnp.mean(values)
            return jnp.mean(centred * eps / sigma), jnp.mean(centred * (eps**2 - 1))
        """, says="the estimator is biased"),
    Answer("score_gradient", "no baseline", """
        def score_gradient(f, key, mu, log_sigma, n):
            sigma = jnp.exp(log_sigma)
            eps = jax.random.normal(key, (n,), mu.dtype)
            values = f(mu + sigma * eps)
            return jnp.mean(values * eps / sigma), jnp.mean(values * (eps**2 - 1))
        """, says="not below half of"),
    Answer("score_gradient", "reparameterisation by jax.grad instead of the score function", """
        def score_gradient(f, key, mu, log_sigma, n):
            eps = jax.random.normal(key, (n,), mu.dtype)
            return jax.grad(lambda mu, log_sigma: jnp.mean(f(mu + jnp.exp(log_sigma) * eps)),
                            (0, 1))(mu, log_sigma)
        """, says="score_gradient must not call jax.grad."),
    Answer("score_gradient", "the score of mu is not divided by sigma", """
        def score_gradient(f, key, mu, log_sigma, n):
            sigma = jnp.exp(log_sigma)
            eps = jax.random.normal(key, (n,), mu.dtype)
            values = f(mu + sigma * eps)
            centred = values - (jnp.sum(values) - values) / (n - 1)
            return jnp.mean(centred * eps), jnp.mean(centred * (eps**2 - 1))
        """, says="The mean of 4000 estimates of d/d mu"),
    Answer("score_gradient", "float32 samples whatever the dtype of mu", """
        def score_gradient(f, key, mu, log_sigma, n):
            sigma = jnp.exp(log_sigma).astype(jnp.float32)
            eps = jax.random.normal(key, (n,), jnp.float32)
            values = f(mu.astype(jnp.float32) + sigma * eps)
            centred = values - (jnp.sum(values) - values) / (n - 1)
            return jnp.mean(centred * eps / sigma), jnp.mean(centred * (eps**2 - 1))
        """, says="expected a float64 scalar"),
    Answer("reparam_gradient", "the score function instead of the pathwise gradient", """
        def reparam_gradient(f, key, mu, log_sigma, n):
            sigma = jnp.exp(log_sigma)
            eps = jax.random.normal(key, (n,), mu.dtype)
            values = f(mu + sigma * eps)
            centred = values - (jnp.sum(values) - values) / (n - 1)
            return jnp.mean(centred * eps / sigma), jnp.mean(centred * (eps**2 - 1))
        """, says="where a pathwise estimate is exactly 3"),
    Answer("reparam_gradient", "differentiates in sigma, not in log_sigma", """
        def reparam_gradient(f, key, mu, log_sigma, n):
            eps = jax.random.normal(key, (n,), mu.dtype)
            return jax.grad(lambda mu, sigma: jnp.mean(f(mu + sigma * eps)), (0, 1))(
                mu, jnp.exp(log_sigma))
        """, says="the estimator is biased"),
    Answer("laplacian", "the trace of jax.hessian", """
        def laplacian(f, x):
            return jnp.trace(jax.hessian(f)(x))
        """, says="laplacian must not call jax.hessian."),
    Answer("laplacian", "half the second derivatives: factorial_scaled=False", """
        def laplacian(f, x):
            def second(v):
                return jet.jet(f, (x,), ((v, jnp.zeros_like(x)),), factorial_scaled=False)[1][1]
            return jnp.sum(jax.vmap(second)(jnp.eye(x.shape[0], dtype=x.dtype)))
        """, says="Every value is half the expected one"),
    Answer("laplacian", "the first-order terms summed: the divergence of nothing", """
        def laplacian(f, x):
            def first(v):
                return jet.jet(f, (x,), ((v, jnp.zeros_like(x)),))[1][0]
            return jnp.sum(jax.vmap(first)(jnp.eye(x.shape[0], dtype=x.dtype)))
        """, says="the sum of d2 over the n unit vectors"),
    Answer("laplacian", "a Python loop over the directions", """
        def laplacian(f, x):
            total = 0.0
            for i in range(x.shape[0]):
                v = jnp.zeros_like(x).at[i].set(1.0)
                total = total + jet.jet(f, (x,), ((v, jnp.zeros_like(x)),))[1][1]
            return total
        """, says="use jax.vmap instead of a Python loop"),
    Answer("laplacian", "one jet along the all-ones direction (cross terms included)", """
        def laplacian(f, x):
            return jet.jet(f, (x,), ((jnp.ones_like(x), jnp.zeros_like(x)),))[1][1]
        """, says="laplacian is wrong for"),
    Answer("host_solver", "no custom_vmap: vmap calls the host once per right-hand side", """
        def host_solver(host_solve):
            def solve(A, b):
                return jax.pure_callback(host_solve, jax.ShapeDtypeStruct(b.shape, b.dtype), A, b,
                                         vmap_method="sequential")
            return solve
        """, says="expected a function decorated with jax.custom_batching.custom_vmap"),
    Answer("host_solver", "a custom_vmap whose rule loops over the batch", """
        def host_solver(host_solve):
            def on_host(A, b):
                return jax.pure_callback(host_solve, jax.ShapeDtypeStruct(b.shape, b.dtype), A, b,
                                         vmap_method="sequential")

            @jax.custom_batching.custom_vmap
            def solve(A, b):
                return on_host(A, b)

            @solve.def_vmap
            def rule(axis_size, in_batched, A, b):
                A_axis = 0 if in_batched[0] else None
                b_axis = 0 if in_batched[1] else None
                return jax.vmap(on_host, in_axes=(A_axis, b_axis))(A, b), True

            return solve
        """, says="host_solve was called 5 times"),
    Answer("host_solver", "the rule passes the right-hand sides as rows, not columns", """
        def host_solver(host_solve):
            def on_host(A, b):
                return jax.pure_callback(host_solve, jax.ShapeDtypeStruct(b.shape, b.dtype), A, b,
                                         vmap_method="sequential")

            @jax.custom_batching.custom_vmap
            def solve(A, b):
                return on_host(A, b)

            @solve.def_vmap
            def rule(axis_size, in_batched, A, b):
                if not in_batched[0]:
                    return on_host(A, b), True
                return jax.vmap(on_host, in_axes=(0, 0 if in_batched[1] else None))(A, b), True

            return solve
        """, says="pass the batch of right-hand sides as b.T"),
]

ALTERNATIVES = [
    Answer("sym_exp", "ties by a relative tolerance, exp at the mean of the tied pair",
           _sym_exp("""
            ew = jnp.exp(w)
            scale = 1.0 + jnp.maximum(jnp.abs(w[:, None]), jnp.abs(w[None, :]))
            tied = jnp.abs(gap) <= 1e-4 * scale
            K = jnp.where(tied, jnp.exp((w[:, None] + w[None, :]) / 2),
                          (ew[:, None] - ew[None, :]) / jnp.where(tied, 1.0, gap))
    """)),
    Answer("sym_exp", "sinh form: exp of the mean times sinh(gap / 2) / (gap / 2)", """
        def eig_exp(A):
            w, V = jnp.linalg.eigh(A)
            return V @ jnp.diag(jnp.exp(w)) @ V.T, (w, V)

        @jax.custom_vjp
        def sym_exp(A):
            return eig_exp(A)[0]

        def sym_exp_fwd(A):
            return eig_exp(A)

        def sym_exp_bwd(residuals, G):
            w, V = residuals
            half = (w[:, None] - w[None, :]) / 2
            mean = (w[:, None] + w[None, :]) / 2
            small = jnp.abs(half) < 1e-3
            ratio = jnp.where(small, 1.0 + half**2 / 6,
                              jnp.sinh(half) / jnp.where(small, 1.0, half))
            K = jnp.exp(mean) * ratio
            return (V @ (K * (V.T @ G @ V)) @ V.T,)

        sym_exp.defvjp(sym_exp_fwd, sym_exp_bwd)
        """),
    Answer("spd_solve", "solve_triangular twice, jnp.outer or a matrix product, zeros for "
           "a symbolic-zero cotangent", _spd_solve("""
        def spd_solve_fwd(A, b):
            L = jnp.linalg.cholesky(A.value)
            solve = lambda v: jax.scipy.linalg.solve_triangular(
                L, jax.scipy.linalg.solve_triangular(L, v, lower=True), lower=True, trans=1)
            return solve(b.value), (L, solve(b.value), A.perturbed, b.perturbed)
        """, """
        def spd_solve_bwd(residuals, g):
            L, x, A_perturbed, b_perturbed = residuals
            if isinstance(g, jax.custom_derivatives.SymbolicZero):
                return None, None
            y = jax.scipy.linalg.solve_triangular(L, g, lower=True)
            b_bar = jax.scipy.linalg.solve_triangular(L, y, lower=True, trans=1)
            A_bar = None
            if A_perturbed:
                A_bar = -jnp.outer(b_bar, x) if x.ndim == 1 else -b_bar @ x.T
            return A_bar, b_bar
        """)),
    Answer("adjoint_solve", "stores the forward trajectory (with half steps) and runs the "
           "adjoint with it, a scan over reversed steps", """
        def trajectory(f, y0, theta, t1, steps):
            h = t1 / steps

            def step(y, _):
                half = rk4_step(f, y, theta, h / 2)
                return rk4_step(f, y, theta, h), (y, half)

            y1, (starts, halves) = jax.lax.scan(step, y0, None, length=steps)
            return y1, starts, halves

        @functools.partial(jax.custom_vjp, nondiff_argnums=(0, 3, 4))
        def adjoint_solve(f, y0, theta, t1, steps):
            return rk4_solve(f, y0, theta, t1, steps)

        def adjoint_solve_fwd(f, y0, theta, t1, steps):
            y1, starts, halves = trajectory(f, y0, theta, t1, steps)
            return rk4_solve(f, y0, theta, t1, steps), (y1, starts, halves, theta)

        def adjoint_solve_bwd(f, t1, steps, residuals, w):
            y1, starts, halves, theta = residuals
            h = t1 / steps

            def rhs(y, a):
                _, pullback = jax.vjp(f, y, theta)
                a_y, a_theta = pullback(a)
                return -a_y, -a_theta

            def step(state, ys):
                a, theta_bar = state
                y_end, y_half, y_start = ys
                k1 = rhs(y_end, a)
                k2 = rhs(y_half, a - h / 2 * k1[0])
                k3 = rhs(y_half, a - h / 2 * k2[0])
                k4 = rhs(y_start, a - h * k3[0])
                a = a - h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
                theta_bar = theta_bar - h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
                return (a, theta_bar), None

            ends = jnp.concatenate([starts[1:], y1[None]])
            (a0, theta_bar), _ = jax.lax.scan(step, (w, jnp.zeros_like(theta)),
                                              (ends, halves, starts), reverse=True)
            return a0, theta_bar

        adjoint_solve.defvjp(adjoint_solve_fwd, adjoint_solve_bwd)
        """),
    Answer("score_surrogate", "log p by logits minus logsumexp, the box as a ratio", """
        def score_surrogate(logits, samples, values):
            log_p = logits[samples] - jax.scipy.special.logsumexp(logits)
            p = jnp.exp(log_p)
            return jnp.mean(p / jax.lax.stop_gradient(p) * values)
        """),
    Answer("score_gradient", "half the samples give the baseline for the other half "
           "(independent), and the other way round", """
        def score_gradient(f, key, mu, log_sigma, n):
            sigma = jnp.exp(log_sigma)
            x = mu + sigma * jax.random.normal(key, (n,), mu.dtype)
            values = f(x)
            score_mu = (x - mu) / sigma**2
            score_log_sigma = ((x - mu) / sigma) ** 2 - 1
            half = n // 2
            first, second = values[:half], values[half:]
            baseline = jnp.concatenate([jnp.full(half, jnp.mean(second)),
                                        jnp.full(n - half, jnp.mean(first))])
            centred = values - baseline
            return jnp.mean(centred * score_mu), jnp.mean(centred * score_log_sigma)
        """),
    Answer("score_gradient", "the score of log_sigma without its -1 (after a leave-one-out "
           "baseline that term has mean zero)", """
        def score_gradient(f, key, mu, log_sigma, n):
            sigma = jnp.exp(log_sigma)
            eps = jax.random.normal(key, (n,), mu.dtype)
            values = f(mu + sigma * eps)
            centred = values - (jnp.sum(values) - values) / (n - 1)
            return jnp.mean(centred * eps / sigma), jnp.mean(centred * eps**2)
        """),
    Answer("reparam_gradient", "the chain rule written out, with jax.vmap(jax.grad(f))", """
        def reparam_gradient(f, key, mu, log_sigma, n):
            eps = jax.random.normal(key, (n,), mu.dtype)
            sigma = jnp.exp(log_sigma)
            slopes = jax.vmap(jax.grad(lambda x: f(x[None])[0]))(mu + sigma * eps)
            return jnp.mean(slopes), jnp.mean(slopes * sigma * eps)
        """),
    Answer("laplacian", "Taylor coefficients (factorial_scaled=False) times 2, directions "
           "by vmap over indices", """
        def laplacian(f, x):
            def coefficient(i):
                v = jax.nn.one_hot(i, x.shape[0], dtype=x.dtype)
                _, (_, c2) = jet.jet(f, (x,), ((v, jnp.zeros_like(v)),), factorial_scaled=False)
                return 2 * c2
            return jax.vmap(coefficient)(jnp.arange(x.shape[0])).sum()
        """),
    Answer("host_solver", "moveaxis for the columns, lax.map over batched matrices", """
        def host_solver(host_solve):
            def call(A, B):
                return jax.pure_callback(host_solve, jax.ShapeDtypeStruct(B.shape, B.dtype), A, B,
                                         vmap_method="sequential")

            @jax.custom_batching.custom_vmap
            def solve(A, b):
                return call(A, b)

            @solve.def_vmap
            def rule(axis_size, in_batched, A, b):
                A_batched, b_batched = in_batched
                if not A_batched:
                    return jnp.moveaxis(call(A, jnp.moveaxis(b, 0, 1)), 1, 0), True
                if not b_batched:
                    b = jnp.broadcast_to(b, (axis_size,) + b.shape)
                return jax.lax.map(lambda Ab: call(*Ab), (A, b)), True

            return solve
        """),
]


TAMPERING = [
    tampering_of("patches numpy's comparisons", PATCH_COMPARISONS, WRONG,
                 "only the diagonal of K: f'(w_i), no divided differences"),
] + attacks_on_the_checks(WRONG)
