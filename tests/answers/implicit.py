"""Answers for source/04_implicit/implicit (implicit differentiation)."""

import textwrap

from . import PATCH_BUILTINS_MODULE, PATCH_COMPARISONS, Answer, attacks_on_the_checks, tampering_of


def _sqrt_forward(steps=10, decorator="@jax.custom_vjp"):
    """fixed_point_sqrt's forward pass, ``steps`` Newton steps from 1, under ``decorator``."""
    return f"""
{decorator}
def fixed_point_sqrt(x):
    y = jnp.ones_like(x)
    for _ in range({steps}):
        y = 0.5 * (y + x / y)
    return y
"""


_SQRT_FORWARD = _sqrt_forward()

# The rule of fixed_point_sqrt that saves y, for answers whose forward pass is what is wrong.
_SQRT_Y_RESIDUAL = """
def _fwd(x):
    y = fixed_point_sqrt(x)
    return y, y

def _bwd(y, g):
    return (g * 0.5 / y,)

fixed_point_sqrt.defvjp(_fwd, _bwd)
"""

def _fixed_point(stop="jnp.logical_not(converged(x_prev, x))", first_count=1,
                 decorator="@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))"):
    """fixed_point as the reference writes it, but for the parts named: ``stop``, the test that
    stops the loop (besides the iteration count), the count it starts from, and the decorator."""
    return f"""
{decorator}
def fixed_point(f, a, x_guess):
    def keep_going(state):
        k, x_prev, x = state
        return {stop} & (k < MAX_ITERATIONS)

    return jax.lax.while_loop(keep_going, lambda s: (s[0] + 1, s[2], f(a, s[2])),
                              ({first_count}, x_guess, f(a, x_guess)))[2]
"""


_FIXED_POINT_FWD = """
def fixed_point_fwd(f, a, x_guess):
    x_star = fixed_point(f, a, x_guess)
    return x_star, (a, x_star)
"""

# The reference's fixed_point and fixed_point_fwd, two blank lines apart.
_FIXED_POINT_FORWARD = _fixed_point() + "\n" + _FIXED_POINT_FWD


def _fixed_point_rule(adjoint="jax.vjp(lambda x: f(a, x), x_star)[1](w)[0]",
                      x_guess_cotangent="jnp.zeros_like(x_star)"):
    """fixed_point_bwd as the reference writes it, but for the parts named: ``adjoint``, the
    product A^T w of the adjoint map, and the cotangent of x_guess."""
    return f"""
def fixed_point_bwd(f, residuals, v):
    a, x_star = residuals

    def adjoint_map(params, w):
        a, x_star, v = params
        return v + {adjoint}

    w = fixed_point(adjoint_map, (a, x_star, v), v)
    return jax.vjp(lambda a: f(a, x_star), a)[1](w)[0], {x_guess_cotangent}
"""


_FIXED_POINT_RULE = _fixed_point_rule()


def _fixed_point_bwd(solve):
    """fixed_point_bwd that finds w by the code ``solve`` (from a, x_star and v), then pulls w back
    to a; x_guess gets a zero cotangent."""
    return f"""
def fixed_point_bwd(f, residuals, v):
    a, x_star = residuals
{textwrap.indent(textwrap.dedent(solve).strip(), "    ")}
    return jax.vjp(lambda a: f(a, x_star), a)[1](w)[0], jnp.zeros_like(x_star)
"""

_REGISTER = "\nfixed_point.defvjp(fixed_point_fwd, fixed_point_bwd)\n"

_DESCENT_STEP = """
def descent_step(params, w):
    log_lam, X, y = params
    lam, n = jnp.exp(log_lam), X.shape[0]
    return w - (X.T @ (X @ w - y) / n + lam * w) / (jnp.sum(X**2) / n + lam)
"""


def _kepler(solve, tangent_solve="y / g(jnp.ones_like(y))", equation="E - e * jnp.sin(E) - M",
            guess="M"):
    return f"""
        def kepler(M, e):
            def equation(E):
                return {equation}

            def solve(f, E):
                {solve}

            return jax.lax.custom_root(equation, {guess}, solve,
                                       lambda g, y: {tangent_solve})
    """


_NEWTON_30 = """def step(_, E):
                    return E - f(E) / jax.jvp(f, (E,), (jnp.ones_like(E),))[1]
                return jax.lax.fori_loop(0, 30, step, E)"""


def _sqrt_rule(fwd_body, bwd_body):
    return _SQRT_FORWARD + f"""

def _fwd(x):
    {fwd_body}


def _bwd(res, g):
    {bwd_body}


fixed_point_sqrt.defvjp(_fwd, _bwd)
"""


WRONG = [
    Answer("fixed_point_sqrt", "no custom_vjp: differentiates the unrolled Newton steps",
           (_sqrt_forward(decorator=""), """
        def _fwd(x):
            return fixed_point_sqrt(x), x

        def _bwd(x, g):
            return (g * 0.5 / jnp.sqrt(x),)
    """),
        says='fixed_point_sqrt must be a function decorated with @jax.custom_vjp.'),
    Answer("fixed_point_sqrt", "saves x and uses 0.5 / sqrt(x) instead of the saved y",
           _sqrt_rule("return fixed_point_sqrt(x), x", "return (g * 0.5 / jnp.sqrt(res),)"),
        says="This is 0.5 / sqrt(x): the rule must use the saved y, the forward pass's"),
    Answer("fixed_point_sqrt", "saves x as the residual and uses it as y (the named pitfall)",
           _sqrt_rule("return fixed_point_sqrt(x), x", "return (g * 0.5 / res,)"),
        says='This is 0.5 / x: save y as the residual, not x.'),
    Answer("fixed_point_sqrt", "no trailing comma: _bwd returns an array, not a tuple",
           _sqrt_rule("y = fixed_point_sqrt(x)\n    return y, y", "return g * 0.5 / res"),
        says='_bwd must return a tuple holding one cotangent, (g * 0.5 / y,)'),
    Answer("fixed_point_sqrt", "unrolled differentiation hidden in the rule: vjp of the loop",
           _sqrt_rule("return fixed_point_sqrt(x), x", """def loop(x):
        y = jnp.ones_like(x)
        for _ in range(10):
            y = 0.5 * (y + x / y)
        return y
    return jax.vjp(loop, res)[1](g)"""),
        says='This is the derivative of the unrolled Newton steps, not the implicit rule.'),
    Answer("fixed_point_sqrt", "jnp.sqrt in the forward pass with the implicit rule", ("""
        @jax.custom_vjp
        def fixed_point_sqrt(x):
            return jnp.sqrt(x)
    """, _SQRT_Y_RESIDUAL),
        says='These are exact square roots: the forward pass must be exactly 10 Newton'),
    Answer("fixed_point_sqrt", "20 Newton steps instead of 10",
           (_sqrt_forward(20), _SQRT_Y_RESIDUAL),
        says='These are exact square roots: the forward pass must be exactly 10 Newton'),
    Answer("fixed_point_sqrt", "9 Newton steps: off by one", (_sqrt_forward(9), _SQRT_Y_RESIDUAL),
        says='fixed_point_sqrt is wrong for x = [4, 9, 0.25, 1e6]'),
    Answer("fixed_point_sqrt", "tuned to the visible inputs: a table of their derivatives",
           _sqrt_rule("y = fixed_point_sqrt(x)\n    return y, y",
                      "return (g * jnp.array([0.25, 1 / 6, 1.0, 0.5 / 1295.5])[:g.shape[0]],)"),
        says='This is 0.5 / x: save y as the residual, not x.'),
    Answer("fixed_point", "unrolled: a Python loop of 200 steps, no custom rule", """
        def fixed_point(f, a, x_guess):
            x = x_guess
            for _ in range(200):
                x = f(a, x)
            return x
    """,
        says='fixed_point must be a function decorated with @jax.custom_vjp.'),
    Answer("fixed_point", "no adjoint solve: w = v", (_FIXED_POINT_FORWARD, """
        def fixed_point_bwd(f, residuals, v):
            a, x_star = residuals
            return jax.vjp(lambda a: f(a, x_star), a)[1](v)[0], jnp.zeros_like(x_star)
    """, _REGISTER),
        says='fixed_point_bwd must find w = v + A^T w by iterating, with fixed_point'),
    Answer("fixed_point", "the adjoint map uses a JVP (A w) instead of a VJP (A^T w)",
           (_FIXED_POINT_FORWARD,
            _fixed_point_rule(adjoint="jax.jvp(lambda x: f(a, x), (x_star,), (w,))[1]"), _REGISTER),
        says='The Jacobian df/dx is applied untransposed: the adjoint iteration needs w'),
    Answer("fixed_point", "the adjoint solved by a bare while_loop: no second derivative",
           (_FIXED_POINT_FORWARD, _fixed_point_bwd("""
            _, vjp_x = jax.vjp(lambda x: f(a, x), x_star)
            w = jax.lax.while_loop(lambda s: jnp.logical_not(converged(s[0], s[1])),
                                   lambda s: (s[1], v + vjp_x(s[1])[0]), (v, v + vjp_x(v)[0]))[1]
        """), _REGISTER),
        says='The backward pass is differentiated too'),
    Answer("fixed_point", "the adjoint map closes over the VJP of x_star",
           (_FIXED_POINT_FORWARD, _fixed_point_bwd("""
            _, vjp_x = jax.vjp(lambda x: f(a, x), x_star)
            w = fixed_point(lambda v, w: v + vjp_x(w)[0], v, v)
        """), _REGISTER),
        says='fixed_point leaked a traced value'),
    Answer("fixed_point", "gives x_guess the cotangent w instead of zero",
           (_FIXED_POINT_FORWARD, _fixed_point_rule(x_guess_cotangent="w"), _REGISTER),
        says='The solution does not depend on the initial guess.'),
    Answer("fixed_point", "a fixed number of steps (fori_loop) instead of a while_loop", ("""
        @functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
        def fixed_point(f, a, x_guess):
            return jax.lax.fori_loop(0, 50, lambda _, x: f(a, x), x_guess)

    """, _FIXED_POINT_FWD, _FIXED_POINT_RULE, _REGISTER),
        says='fixed_point must iterate with jax.lax.while_loop until converged(x_prev'),
    Answer("fixed_point", "the reference's stopping rule abs(x_prev - x) > 1e-6: not for arrays",
           ("""
        @functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
        def fixed_point(f, a, x_guess):
            return jax.lax.while_loop(lambda s: jnp.abs(s[0] - s[1]) > 1e-6,
                                      lambda s: (s[1], f(a, s[1])),
                                      (x_guess, f(a, x_guess)))[1]

    """, _FIXED_POINT_FWD, _FIXED_POINT_RULE, _REGISTER),
        says="fixed_point's while_loop condition returns a bool array of shape (3,), not"),
    Answer("fixed_point", "unrolled differentiation in the rule: vjp of 20 steps from x_star",
           (_FIXED_POINT_FORWARD, """
        def fixed_point_bwd(f, residuals, v):
            a, x_star = residuals

            def twenty_steps(a):
                x = x_star
                for _ in range(20):
                    x = f(a, x)
                return x

            return jax.vjp(twenty_steps, a)[1](v)[0], jnp.zeros_like(x_star)
    """, _REGISTER),
        says='fixed_point_bwd must find w = v + A^T w by iterating, with fixed_point'),
    Answer("fixed_point", "no iteration counter: never stops when the iteration diverges", ("""
        @functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
        def fixed_point(f, a, x_guess):
            return jax.lax.while_loop(lambda s: jnp.logical_not(converged(*s)),
                                      lambda s: (s[1], f(a, s[1])), (x_guess, f(a, x_guess)))[1]

    """, _FIXED_POINT_FWD, _FIXED_POINT_RULE, _REGISTER),
        says='It ran until converged: the loop must also stop once the iteration count'),
    Answer("fixed_point", "the counter starts at 0: one evaluation of f too many",
           (_fixed_point(first_count=0), _FIXED_POINT_FWD, _FIXED_POINT_RULE, _REGISTER),
        says='One evaluation of f too many: the loop starts from (1, x_guess, f(a'),
    Answer("fixed_point", "a tolerance of its own instead of converged(x_prev, x)",
           (_fixed_point(stop="(jnp.max(jnp.abs(x - x_prev)) > 1e-7)"), _FIXED_POINT_FWD,
            _FIXED_POINT_RULE, _REGISTER),
        says="Stop with the notebook's converged(x_prev, x), not a test of your own."),
    Answer("fixed_point", "the adjoint by a dense solve with the Jacobian of f",
           (_FIXED_POINT_FORWARD, _fixed_point_bwd("""
            n = x_star.size
            A = jax.jacobian(f, argnums=1)(a, x_star).reshape(n, n)
            w = jnp.linalg.solve(jnp.eye(n, dtype=A.dtype) - A.T, v.reshape(n))
            w = w.reshape(x_star.shape)
        """), _REGISTER),
        says='fixed_point_bwd must find w = v + A^T w by iterating, with fixed_point'),
    Answer("fixed_point", "no nondiff_argnums: f is treated as an array argument",
           (_fixed_point(decorator="@jax.custom_vjp"), """
        def fixed_point_fwd(f, a, x_guess):
            x_star = fixed_point(f, a, x_guess)
            return x_star, (f, a, x_star)

        def fixed_point_bwd(residuals, v):
            f, a, x_star = residuals
            w = v
            for _ in range(100):
                w = v + jax.vjp(lambda x: f(a, x), x_star)[1](w)[0]
            return None, jax.vjp(lambda a: f(a, x_star), a)[1](w)[0], jnp.zeros_like(x_star)
    """, _REGISTER),
        says='fixed_point must declare nondiff_argnums=(0,)'),
    Answer("kepler", "Newton unrolled and differentiated: no custom_root", """
        def kepler(M, e):
            def step(_, E):
                return E - (E - e * jnp.sin(E) - M) / (1 - e * jnp.cos(E))
            return jax.lax.fori_loop(0, 30, step, M)
    """,
        says='kepler must solve the equation with jax.lax.custom_root.'),
    Answer("kepler", "tangent_solve multiplies by the derivative instead of dividing",
           _kepler(_NEWTON_30, tangent_solve="y * g(jnp.ones_like(y))"),
        says='tangent_solve must divide by the derivative, y / g(1), not multiply by it.'),
    Answer("kepler", "tangent_solve returns y unchanged", _kepler(_NEWTON_30, tangent_solve="y"),
        says='dE/dM is wrong for M = [0.5, 1, 2, 3], e = [0.1, 0.5, 0.9, 0.3]'),
    Answer("kepler", "only 3 Newton steps: unconverged for large e",
           _kepler(_NEWTON_30.replace("0, 30,", "0, 3,")),
        says="Run Newton's method until it converges (check the number of steps and the"),
    Answer("kepler", "the wrong equation: E + e sin E = M",
           _kepler(_NEWTON_30, equation="E + e * jnp.sin(E) - M"),
        says="Run Newton's method until it converges (check the number of steps and the"),
    Answer("kepler", "Newton started at pi: diverges outside [0, 2 pi]",
           _kepler(_NEWTON_30, guess="jnp.full_like(M, jnp.pi)"),
        says="Run Newton's method until it converges (check the number of steps and the"),
    Answer("kepler", "30 steps of the slow iteration E <- M + e sin E instead of Newton",
           _kepler("return jax.lax.fori_loop(0, 30, lambda _, E: E - f(E), E)"),
        says="Run Newton's method until it converges (check the number of steps and the"),
    Answer("ridge_hypergradient", "the closed-form solve instead of fixed_point", """
        def ridge_hypergradient(log_lam, X, y, X_val, y_val):
            def validation_loss(log_lam):
                n, d = X.shape
                H = X.T @ X / n + jnp.exp(log_lam) * jnp.eye(d, dtype=X.dtype)
                w = jnp.linalg.solve(H, X.T @ y / n)
                r = X_val @ w - y_val
                return r @ r / (2 * y_val.shape[0])
            return jax.value_and_grad(validation_loss)(log_lam)
    """,
        says="ridge_hypergradient's gradient does not come from fixed_point's implicit"),
    Answer("ridge_hypergradient", "the derivative in lambda instead of log lambda",
           (_DESCENT_STEP, """
        def ridge_hypergradient(log_lam, X, y, X_val, y_val):
            def validation_loss(lam):
                w = fixed_point(descent_step, (jnp.log(lam), X, y),
                                jnp.zeros(X.shape[1], X.dtype))
                r = X_val @ w - y_val
                return r @ r / (2 * y_val.shape[0])
            return jax.value_and_grad(validation_loss)(jnp.exp(log_lam))
    """),
        says='This is the derivative in lambda: differentiate in log lambda.'),
    Answer("ridge_hypergradient", "the map closes over log_lam instead of passing it in a", """
        def ridge_hypergradient(log_lam, X, y, X_val, y_val):
            def validation_loss(log_lam):
                lam, n = jnp.exp(log_lam), X.shape[0]

                def descent_step(params, w):
                    X, y = params
                    return w - (X.T @ (X @ w - y) / n + lam * w) / (jnp.sum(X**2) / n + lam)

                w = fixed_point(descent_step, (X, y), jnp.zeros(X.shape[1], X.dtype))
                r = X_val @ w - y_val
                return r @ r / (2 * y_val.shape[0])
            return jax.value_and_grad(validation_loss)(log_lam)
    """,
        says='the function you hand to fixed_point closes over a value being'),
    Answer("ridge_hypergradient", "forgets the penalty's gradient lambda * w in the map", """
        def ridge_hypergradient(log_lam, X, y, X_val, y_val):
            def descent_step(params, w):
                log_lam, X, y = params
                lam, n = jnp.exp(log_lam), X.shape[0]
                return w - (X.T @ (X @ w - y) / n) / (jnp.sum(X**2) / n + lam)

            def validation_loss(log_lam):
                w = fixed_point(descent_step, (log_lam, X, y), jnp.zeros(X.shape[1], X.dtype))
                r = X_val @ w - y_val
                return r @ r / (2 * y_val.shape[0])
            return jax.value_and_grad(validation_loss)(log_lam)
    """,
        says='the validation loss of ridge_hypergradient is wrong for log lambda = -1, 20'),
    Answer("ridge_hypergradient", "a finite-difference hypergradient", (_DESCENT_STEP, """
        def ridge_hypergradient(log_lam, X, y, X_val, y_val):
            def validation_loss(log_lam):
                w = fixed_point(descent_step, (log_lam, X, y), jnp.zeros(X.shape[1], X.dtype))
                r = X_val @ w - y_val
                return r @ r / (2 * y_val.shape[0])
            h = 1e-3
            return validation_loss(log_lam), (validation_loss(log_lam + h)
                                              - validation_loss(log_lam - h)) / (2 * h)
    """),
        says="ridge_hypergradient's gradient does not come from fixed_point's implicit"),
    Answer("ridge_hypergradient", "the mean squared error without the factor 1/2",
           (_DESCENT_STEP, """
        def ridge_hypergradient(log_lam, X, y, X_val, y_val):
            def validation_loss(log_lam):
                w = fixed_point(descent_step, (log_lam, X, y), jnp.zeros(X.shape[1], X.dtype))
                return jnp.mean((X_val @ w - y_val) ** 2)
            return jax.value_and_grad(validation_loss)(log_lam)
    """),
        says='Every value is twice the expected one: a factor is missing or extra.'),
    Answer("ridge_hypergradient", "unrolled gradient descent, differentiated step by step", """
        def ridge_hypergradient(log_lam, X, y, X_val, y_val):
            def validation_loss(log_lam):
                lam, n = jnp.exp(log_lam), X.shape[0]
                w = jnp.zeros(X.shape[1], X.dtype)
                for _ in range(300):
                    w = w - (X.T @ (X @ w - y) / n + lam * w) / (jnp.sum(X**2) / n + lam)
                r = X_val @ w - y_val
                return r @ r / (2 * y_val.shape[0])
            return jax.value_and_grad(validation_loss)(log_lam)
    """,
        says="ridge_hypergradient's gradient does not come from fixed_point's implicit"),
]

ALTERNATIVES = [
    Answer("fixed_point_sqrt", "a fori_loop forward and a residual wrapped in a tuple", """
        @jax.custom_vjp
        def fixed_point_sqrt(x):
            return jax.lax.fori_loop(0, 10, lambda _, y: (y + x / y) / 2, jnp.ones_like(x))

        def _fwd(x):
            y = fixed_point_sqrt(x)
            return y, (y,)

        def _bwd(residuals, g):
            (y,) = residuals
            return (0.5 * g / y,)

        fixed_point_sqrt.defvjp(_fwd, _bwd)
    """),
    Answer("fixed_point", "the loop state as a dict, one jax.vjp for both partials, None for "
           "x_guess", """
        @functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
        def fixed_point(f, a, x_guess):
            def keep_going(s):
                return ~converged(s["prev"], s["x"]) & (s["count"] < MAX_ITERATIONS)

            def step(s):
                return {"count": s["count"] + 1, "prev": s["x"], "x": f(a, s["x"])}

            start = {"count": 1, "prev": x_guess, "x": f(a, x_guess)}
            return jax.lax.while_loop(keep_going, step, start)["x"]

        def fixed_point_fwd(f, a, x_guess):
            x_star = fixed_point(f, a, x_guess)
            return x_star, (a, x_star)

        def _adjoint_step(f, params, w):
            a, x_star, v = params
            return v + jax.vjp(f, a, x_star)[1](w)[1]

        def fixed_point_bwd(f, residuals, v):
            a, x_star = residuals
            w = fixed_point(functools.partial(_adjoint_step, f), (a, x_star, v), v)
            a_bar, _ = jax.vjp(f, a, x_star)[1](w)
            return a_bar, None

        fixed_point.defvjp(fixed_point_fwd, fixed_point_bwd)
    """),
    Answer("kepler", "while_loop Newton from M + e sin M, with the slope written out", """
        def kepler(M, e):
            def equation(E):
                return E - e * jnp.sin(E) - M

            def solve(f, E):
                def step(state):
                    _, E = state
                    return E, E - f(E) / (1 - e * jnp.cos(E))
                return jax.lax.while_loop(lambda s: jnp.logical_not(converged(*s)), step,
                                          (E, E - f(E) / (1 - e * jnp.cos(E))))[1]

            return jax.lax.custom_root(equation, M + e * jnp.sin(M), solve,
                                       lambda g, y: y / g(jnp.ones_like(y)))
    """),
    Answer("kepler", "a scalar custom_root, vectorized with jnp.vectorize", """
        def _kepler_scalar(M, e):
            def solve(f, E):
                return jax.lax.fori_loop(0, 30, lambda _, E: E - f(E) / jax.grad(f)(E), E)

            return jax.lax.custom_root(lambda E: E - e * jnp.sin(E) - M, M, solve,
                                       lambda g, y: y / g(jnp.ones_like(y)))

        kepler = jnp.vectorize(_kepler_scalar)
    """),
    Answer("ridge_hypergradient", "X and y closed over, lambda passed in a", """
        def ridge_hypergradient(log_lam, X, y, X_val, y_val):
            n = X.shape[0]

            def descent_step(lam, w):
                return w - (X.T @ (X @ w - y) / n + lam * w) / (jnp.sum(X**2) / n + lam)

            def validation_loss(log_lam):
                w = fixed_point(descent_step, jnp.exp(log_lam), jnp.zeros(X.shape[1], X.dtype))
                return 0.5 * jnp.mean((X_val @ w - y_val) ** 2)

            return jax.value_and_grad(validation_loss)(log_lam)
    """),
    Answer("ridge_hypergradient", "wrapped in jax.jit, with a named map at module level", """
        def ridge_descent_step(params, w):
            log_lam, X, y = params
            lam, n = jnp.exp(log_lam), X.shape[0]
            return w - (X.T @ (X @ w - y) / n + lam * w) / (jnp.sum(X**2) / n + lam)

        @jax.jit
        def ridge_hypergradient(log_lam, X, y, X_val, y_val):
            def validation_loss(log_lam):
                w = fixed_point(ridge_descent_step, (log_lam, X, y),
                                jnp.zeros(X.shape[1], X.dtype))
                return jnp.sum((X_val @ w - y_val) ** 2) / (2 * y_val.shape[0])

            return jax.value_and_grad(validation_loss)(log_lam)
    """),
    Answer("ridge_hypergradient", "the optimal step size from the spectrum of X^T X", """
        def ridge_hypergradient(log_lam, X, y, X_val, y_val):
            n = X.shape[0]
            eigenvalues = jnp.linalg.eigvalsh(X.T @ X / n)
            largest, smallest = eigenvalues[-1], eigenvalues[0]

            def descent_step(log_lam, w):
                lam = jnp.exp(log_lam)
                step = 2.0 / (largest + smallest + 2 * lam)
                return w - step * (X.T @ (X @ w - y) / n + lam * w)

            def validation_loss(log_lam):
                w = fixed_point(descent_step, log_lam, jnp.zeros(X.shape[1], X.dtype))
                r = X_val @ w - y_val
                return 0.5 * (r @ r) / y_val.shape[0]

            return jax.value_and_grad(validation_loss)(log_lam)
    """),
]


_CG_STEPS = """
def conjugate_gradients(matvec, b, num_iters):
    def step(_, state):
        x, r, p, rr = state
        Ap = matvec(p)
        pAp = jnp.vdot(p, Ap)
        alpha = jnp.where(pAp > 0, rr / jnp.where(pAp > 0, pAp, 1.0), 0.0)
        x, r = x + alpha * p, r - alpha * Ap
        rr_next = jnp.vdot(r, r)
        beta = jnp.where(rr > 0, rr_next / jnp.where(rr > 0, rr, 1.0), 0.0)
        return x, r, r + beta * p, rr_next

    return jax.lax.fori_loop(0, num_iters, step, (jnp.zeros_like(b), b, b, jnp.vdot(b, b)))[0]
"""

WRONG += [
    Answer("kepler", "a tangent solve that calls g on the Python number 1.0, float64 in x64",
           """
        def _kepler_scalar(M, e):
            def solve(f, E):
                return jax.lax.fori_loop(0, 30, lambda _, E: E - f(E) / jax.grad(f)(E), E)

            return jax.lax.custom_root(lambda E: E - e * jnp.sin(E) - M, M, solve,
                                       lambda g, y: y / g(1.0))

        kepler = jnp.vectorize(_kepler_scalar)
    """, says="with a float64 scalar for a float32 scalar: a tangent has the shape"),
    Answer("cg_solve", "no custom_linear_solve: differentiates CG's iterations", (_CG_STEPS, """
        def cg_solve(matvec, b, num_iters):
            return conjugate_gradients(matvec, b, num_iters)
        """), says="does not go through jax.lax.custom_linear_solve"),
    Answer("cg_solve", "calls jax.scipy.sparse.linalg.cg", """
        def cg_solve(matvec, b, num_iters):
            return jax.scipy.sparse.linalg.cg(matvec, b, maxiter=num_iters)[0]
        """, says="cg_solve must not call jax.scipy.sparse.linalg.cg."),
    Answer("cg_solve", "calls the built-in CG through JAX's private module", """
        import importlib

        def cg_solve(matvec, b, num_iters):
            private = importlib.import_module("jax._src.scipy.sparse.linalg")
            return private.cg(matvec, b, maxiter=num_iters)[0]
        """, says="cg_solve must not call jax.scipy.sparse.linalg.cg."),
    Answer("cg_solve", "starts CG from zeros of the default dtype, float64 in 64-bit mode", (
        _CG_STEPS.replace("jnp.zeros_like(b)", "jnp.zeros(b.shape)"), """
        def cg_solve(matvec, b, num_iters):
            return jax.lax.custom_linear_solve(
                matvec, b, lambda mv, r: conjugate_gradients(mv, r, num_iters), symmetric=True)
        """), says="cg_solve built a program whose types do not agree"),
    Answer("cg_solve", "forms the matrix A and solves densely", """
        def cg_solve(matvec, b, num_iters):
            A = jax.vmap(matvec)(jnp.eye(b.shape[0], dtype=b.dtype)).T
            return jax.lax.custom_linear_solve(matvec, b, lambda mv, r: jnp.linalg.solve(A, r),
                                               symmetric=True)
        """, says="it forms the matrix A"),
    Answer("cg_solve", "CG's step size r.r / p.p instead of r.r / p.Ap", """
        def cg_solve(matvec, b, num_iters):
            def cg(matvec, b):
                def step(_, state):
                    x, r, p, rr = state
                    Ap = matvec(p)
                    alpha = rr / jnp.vdot(p, p)
                    x, r = x + alpha * p, r - alpha * Ap
                    rr_next = jnp.vdot(r, r)
                    return x, r, r + rr_next / rr * p, rr_next
                state = (jnp.zeros_like(b), b, b, jnp.vdot(b, b))
                return jax.lax.fori_loop(0, num_iters, step, state)[0]

            return jax.lax.custom_linear_solve(matvec, b, cg, symmetric=True)
        """, says="cg_solve is wrong for"),
]

ALTERNATIVES += [
    Answer("cg_solve", "a while_loop CG with a tolerance, capped at num_iters", """
        def cg_solve(matvec, b, num_iters):
            def cg(matvec, b):
                def keep_going(state):
                    k, x, r, p, rr = state
                    return (k < num_iters) & (rr > 0)

                def step(state):
                    k, x, r, p, rr = state
                    Ap = matvec(p)
                    alpha = rr / jnp.vdot(p, Ap)
                    x, r = x + alpha * p, r - alpha * Ap
                    rr_next = jnp.vdot(r, r)
                    return k + 1, x, r, r + (rr_next / rr) * p, rr_next

                state = (0, jnp.zeros_like(b), b, b, jnp.vdot(b, b))
                return jax.lax.while_loop(keep_going, step, state)[1]

            return jax.lax.custom_linear_solve(matvec, b, cg, symmetric=True)
        """),
]


TAMPERING = [
    tampering_of("patches numpy's comparisons", PATCH_COMPARISONS, WRONG,
                 "saves x and uses 0.5 / sqrt(x) instead of the saved y"),
    tampering_of("patches the builtins module", PATCH_BUILTINS_MODULE, WRONG,
                 "tangent_solve multiplies by the derivative instead of dividing"),
]

TAMPERING += attacks_on_the_checks(WRONG)
