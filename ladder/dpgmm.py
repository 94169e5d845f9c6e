"""The variational DP-GMM hyper prior p(t) of Sec 3.2, fitted by CAVI on any torch device.

Model (Sec 3.2; Blei & Jordan 2006): a truncated stick-breaking Dirichlet-process mixture of K
full-covariance Gaussians,

    v_k ~ Beta(1, alpha_0),   w_k = v_k prod_{j<k} (1 - v_j),
    (mu_k, Lambda_k) ~ N(mu_k | m_0, (beta_0 Lambda_k)^-1) W(Lambda_k | W_0, nu_0),
    k_i ~ Cat(w),             t_i ~ N(mu_{k_i}, Lambda_{k_i}^-1),

with the mean-field family q(v_k) = Beta(gamma_k1, gamma_k2), q(mu_k, Lambda_k) =
N(mu_k | m_k, (beta_k Lambda_k)^-1) W(Lambda_k | W_k, nu_k), q(k_i) = Discrete(r_i). ``fit`` runs
coordinate ascent (CAVI): the E-step sets r_i (Bishop 10.46-10.49, with Blei & Jordan's
E[log w_k] = E[log v_k] + sum_{j<k} E[log(1 - v_j)] in place of Bishop 10.66), the M-step sets
the sticks (Blei & Jordan: gamma_k1 = 1 + N_k, gamma_k2 = alpha_0 + sum_{j>k} N_j) and the
Normal-Wishart factors (Bishop 10.58-10.63), and the bound L(t; xi) of Eq (6) is evaluated after
every iteration with all its terms (Bishop 10.70-10.77, with the Beta sticks in place of the
Dirichlet). Every update is an exact coordinate maximiser, so the bound never decreases;
``reg_covar`` (added to the scatter matrices, as scikit-learn does) moves the Normal-Wishart update
off the optimum, which costs O(reg_covar^2) in the bound.

Paper priors and the conjugate Normal-Wishart. Sec 3.2 writes mu ~ N(0, I), Sigma ~ W(d_t, I) and
q(mu_m) = N(v_m, I), q(Sigma_m) = W(a_m, B_m). CAVI has closed-form updates only for the conjugate
Normal-Wishart over the mean and the *precision* Lambda = Sigma^-1 that Blei & Jordan and
scikit-learn use, so we read the paper's prior as m_0 = 0, beta_0 = 1 (mu | Lambda ~
N(0, Lambda^-1), which is N(0, I) at Lambda = I), W_0 = I and nu_0 = d_t (Lambda ~ W(d_t, I),
i.e. Sigma ~ inverse-Wishart(d_t, I)). In scikit-learn's names: ``mean_prior=0``,
``mean_precision_prior=1``, ``covariance_prior=W_0^-1=I``, ``degrees_of_freedom_prior=d_t``
(:meth:`DPGMM.paper_prior`). Likewise the variational mean's covariance is (beta_m Lambda_m)^-1,
not I, and (v_m, a_m, B_m) are our (m_m, nu_m, W_m).

Truncation. As in scikit-learn, all K sticks are Beta distributed (Blei & Jordan instead set
q(v_K = 1) = 1): the mass prod_k (1 - v_k) belongs to the infinite tail, to which q assigns no
data (Kurihara, Welling & Teh 2007), so ``weights_`` is E_q[w] renormalised over the K components.

Bound versus scikit-learn. ``BayesianGaussianMixture`` evaluates the bound in a collapsed form,
valid when q(v, mu, Lambda) is the exact optimum given r, and drops every term that depends only on
N, d, K and the priors. With ``reg_covar=0`` (an exact M-step) our ``lower_bound_`` equals
scikit-learn's plus the constant::

    K log(alpha_0)                          (the Beta(1, alpha_0) stick priors' normalisers)
    - N d/2 log(2 pi)                       (the Gaussian likelihood's normaliser)
    + K [d/2 log(beta_0) + nu_0/2 log|W_0^-1| - nu_0 d/2 log 2 - sum_{i<d} lgamma((nu_0 - i)/2)]
                                            (the Normal-Wishart prior's normaliser, Bishop B.79,
                                             less the d(d-1)/4 log(pi) that cancels with q's).

With ``reg_covar > 0`` the M-step is slightly off the optimum and scikit-learn's collapsed formula
also differs from the bound at first order, by about reg_covar/2 sum_k N_k tr(E[Lambda_k]).

Convergence. scikit-learn stops when the change of the *total* bound is below ``tol``; by default
(``tol_per_sample=True``) we divide the change by N first, so that the warm-started refit at the
end of every epoch stops after a few iterations whatever N is. As in scikit-learn, a warm-started
fit compares its first iteration with the previous fit's ``lower_bound_`` (even one on other data),
so repeated ``fit`` calls with ``max_iter=1`` end with ``converged_`` set, and a refit on data the
model already fits can stop after one iteration. The constant above depends on N and on the
data-dependent priors, so on other data that first comparison can differ from scikit-learn's.

Use in the loss (Eq (7)): :meth:`DPGMM.log_prob` is differentiable in t; ``kind="bound"`` is the
per-point term of Eq (6), log sum_k exp(E_q[log w_k] + E_q[log N(t | mu_k, Lambda_k^-1)]), which
Eq (7) puts in place of log p(t). ``"plugin"`` is the mixture density at the point estimates (the
reference code's choice, see the reference-code appendix, section 3) and ``"predictive"`` the
posterior predictive density, a mixture of Student-t (Bishop 10.81).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import Tensor
from torch.autograd.function import once_differentiable

from ladder.numerics import EXPONENT_FLOOR, logsumexp, quadratic_features

__all__ = ["DPGMM"]

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
LOG_PROB_KINDS = ("bound", "plugin", "predictive")
_FUSED_KINDS = ("bound", "plugin")  # a_k(t) = c_k - maha_k(t) / 2: the training kinds
MAX_QUADRATIC_D = 8  # up to here the Mahalanobis distances are one product with phi(u)
_STATE_FORMAT = "ladder.dpgmm.DPGMM"
_STATE_VERSION = 1
_HYPER = (
    "n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init", "init_params",
    "weight_concentration_prior_type", "weight_concentration_prior", "mean_precision_prior",
    "mean_prior", "degrees_of_freedom_prior", "covariance_prior", "random_state", "warm_start",
    "tol_per_sample", "dtype",
)
_FITTED_TENSORS = (
    "weight_concentration_a", "weight_concentration_b", "mean_precision_", "means_",
    "degrees_of_freedom_", "covariances_", "precisions_cholesky_", "mean_prior_",
    "covariance_prior_",
)
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class _Params:
    """The variational parameters xi (means relative to ``center``)."""

    g1: Tensor  # Beta sticks, gamma_k1 = 1 + N_k
    g2: Tensor  # gamma_k2 = alpha_0 + sum_{j>k} N_j
    beta: Tensor  # mean precision beta_k
    m: Tensor  # means m_k - center, (K, d)
    nu: Tensor  # Wishart degrees of freedom nu_k
    cov: Tensor  # (W_k nu_k)^-1 = E[Lambda_k]^-1, (K, d, d)
    chol: Tensor  # upper U_k with U_k U_k^T = E[Lambda_k] (scikit-learn's precisions_cholesky_)


def _dtype(value: Any) -> torch.dtype:
    if isinstance(value, str):
        value = getattr(torch, value.replace("torch.", ""), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype such as torch.float64, got {value!r}")
    return value


def _matrix_or_none(value: Any, name: str, ndim: int) -> Tensor | None:
    """A user prior as a float64 CPU tensor, checked for shape (and, for matrices, SPD)."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        out = value.detach().to("cpu", torch.float64)
    else:
        try:
            out = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an array of numbers, got {value!r:.60}") from None
    if out.ndim != ndim or (ndim == 2 and out.shape[0] != out.shape[1]) or out.numel() == 0:
        want = "(n_features,)" if ndim == 1 else "(n_features, n_features)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(out.shape)}")
    if not torch.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinity")
    if ndim == 2:
        problem = _spd_problems(out[None])[0]
        if problem:
            raise ValueError(f"{name} must be {problem}")
    return out


def _spd_problems(mats: Tensor, rtol: float = 1e-10) -> list[str]:
    """For each of the matrices (..., d, d): "" if symmetric (to ``rtol``) and positive
    definite, else what it is not ("symmetric" or "positive definite")."""
    symmetric = torch.isclose(mats, mats.mT, rtol=rtol, atol=0.0).flatten(-2).all(-1)
    definite = torch.linalg.cholesky_ex(mats).info == 0
    return ["" if s and p else "symmetric" if not s else "positive definite"
            for s, p in zip(symmetric.flatten().tolist(), definite.flatten().tolist(),
                            strict=True)]


def _is_real(value: Any) -> bool:
    """A Python or numpy real number (not a bool), NaN excluded."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool) and not math.isnan(value))


def _damaged(what: str) -> ValueError:
    return ValueError(f"DPGMM state {what}; the state is damaged and was not loaded: load "
                      "another copy or refit the DP-GMM")


def _check_keys(part: Any, keys: set[str], name: str) -> None:
    """``part`` of a state is a dict with exactly ``keys``; else a ValueError naming the
    difference."""
    if not isinstance(part, dict):
        raise _damaged(f"{name} must be a dict, got {type(part).__name__}")
    missing, unknown = sorted(keys - set(part)), sorted(map(str, set(part) - keys))
    if missing or unknown:
        raise _damaged(f"{name} " + " and ".join(
            text for text in (f"lacks {missing}" if missing else "",
                              f"has unknown keys {unknown}" if unknown else "") if text))


def _singular_to_rounding(X: Tensor, cov: Tensor) -> bool:
    """Whether the covariance ``cov`` of the rows of X is singular up to its rounding: a feature
    whose spread is within n eps of its magnitude (constant but for rounding), or a correlation
    matrix with an eigenvalue within n d eps of 0 (e.g. duplicated or collinear points), where
    an exact test would pass or fail by the luck of the last bits."""
    n, d = X.shape
    eps = torch.finfo(X.dtype).eps
    std = cov.diagonal().sqrt()
    if bool((std <= n * eps * X.abs().amax(0)).any()):
        return True
    corr = cov / (std[:, None] * std[None, :])
    return float(torch.linalg.eigvalsh(corr).min()) <= n * d * eps


def _log_wishart_norm(logdet_scale_inv: Tensor, nu: Tensor, d: int) -> Tensor:
    """log B(W, nu) of the Wishart W(Lambda | W, nu) (Bishop B.79), given log|W^-1|."""
    i = torch.arange(d, dtype=nu.dtype, device=nu.device)
    return (0.5 * nu * logdet_scale_inv - 0.5 * nu * d * math.log(2.0)
            - 0.25 * d * (d - 1) * math.log(math.pi)
            - torch.lgamma(0.5 * (nu.unsqueeze(-1) - i)).sum(-1))


class DPGMM:
    """Variational Dirichlet-process GMM fitted by CAVI (Sec 3.2, Eq (6)); see the module docstring.

    The parameters mean what they mean in ``sklearn.mixture.BayesianGaussianMixture(
    weight_concentration_prior_type='dirichlet_process', covariance_type='full')`` and default to
    its values (``n_components`` to LaDDer's 50): ``weight_concentration_prior`` alpha_0 (None:
    1/K), ``mean_prior`` m_0 (None: the data mean), ``mean_precision_prior`` beta_0 (None: 1),
    ``degrees_of_freedom_prior`` nu_0 (None: d), ``covariance_prior`` W_0^-1 (None: the data
    covariance); the None defaults are recomputed from the data at every fit, as in scikit-learn.
    :meth:`paper_prior` builds the paper's priors. ``tol_per_sample`` (ours): compare the change of
    the bound per data point with ``tol`` (False: the total, as scikit-learn). ``device`` (None:
    the device of the first fitted tensor) and ``dtype`` (float64) are where and how CAVI runs.
    Fitted attributes are torch tensors on that device, with scikit-learn's names.
    """

    def __init__(
        self,
        *,
        n_components: int = 50,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weight_concentration_prior_type: str = "dirichlet_process",
        weight_concentration_prior: float | None = None,
        mean_precision_prior: float | None = None,
        mean_prior: Any = None,
        degrees_of_freedom_prior: float | None = None,
        covariance_prior: Any = None,
        random_state: int | None = None,
        warm_start: bool = False,
        tol_per_sample: bool = True,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str = torch.float64,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.tol_per_sample = tol_per_sample
        self.device = None if device is None else torch.device(device)
        self.dtype = dtype
        self._validate_hyper()
        self._params: _Params | None = None
        self._cache: dict[tuple[torch.dtype, torch.device], dict[str, Tensor]] = {}

    @classmethod
    def paper_prior(cls, n_features: int, weight_concentration_prior: float = 0.1,
                    **kwargs: Any) -> DPGMM:
        """The priors of Sec 3.2, mu ~ N(0, I) and Sigma ~ W(d_t, I), read as the conjugate
        Normal-Wishart (module docstring): mean_prior 0, mean_precision_prior 1,
        degrees_of_freedom_prior d_t, covariance_prior I. alpha_0 defaults to the reference code's
        0.1 (the paper does not give it); ``kwargs`` go to the constructor."""
        if not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"n_features must be a positive int, got {n_features!r}")
        return cls(weight_concentration_prior=weight_concentration_prior,
                   mean_prior=torch.zeros(n_features, dtype=torch.float64),
                   mean_precision_prior=1.0, degrees_of_freedom_prior=float(n_features),
                   covariance_prior=torch.eye(n_features, dtype=torch.float64), **kwargs)

    # ------------------------------------------------------------------ checks

    def _validate_hyper(self) -> None:
        def positive_int(name: str, low: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")

        def real(name: str, allow_none: bool, strict: bool) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(
                value, bool) and math.isfinite(value) and (value > 0 if strict else value >= 0)
            if not ok:
                sign = "> 0" if strict else ">= 0"
                none = " or None" if allow_none else ""
                raise ValueError(f"{name} must be a finite number {sign}{none}, got {value!r}")

        positive_int("n_components", 1)
        positive_int("max_iter", 0)
        positive_int("n_init", 1)
        real("tol", False, False)
        real("reg_covar", False, False)
        for name in ("weight_concentration_prior", "mean_precision_prior",
                     "degrees_of_freedom_prior"):
            real(name, True, True)
        if self.covariance_type != "full":
            raise ValueError(f"only covariance_type='full' is implemented, got "
                             f"{self.covariance_type!r}")
        if self.weight_concentration_prior_type != "dirichlet_process":
            raise ValueError("only weight_concentration_prior_type='dirichlet_process' is "
                             f"implemented, got {self.weight_concentration_prior_type!r}")
        if self.init_params not in INIT_PARAMS:
            raise ValueError(f"init_params must be one of {INIT_PARAMS}, got {self.init_params!r}")
        rs = self.random_state
        if rs is not None and (isinstance(rs, bool) or not isinstance(rs, (int, np.integer))):
            raise ValueError(f"random_state must be an int or None, got {rs!r}")
        self.dtype = _dtype(self.dtype)
        self.mean_prior = _matrix_or_none(self.mean_prior, "mean_prior", 1)
        self.covariance_prior = _matrix_or_none(self.covariance_prior, "covariance_prior", 2)
        if (self.mean_prior is not None and self.covariance_prior is not None
                and self.mean_prior.shape[0] != self.covariance_prior.shape[0]):
            raise ValueError(f"mean_prior has {self.mean_prior.shape[0]} features but "
                             f"covariance_prior has {self.covariance_prior.shape[0]}")

    def _check_X(self, X: Any, n_features: int | None, name: str = "X") -> Tensor:
        """X as a finite (N, d) tensor in ``dtype`` on the fitted device, with d = n_features
        where that is given."""
        if isinstance(X, Tensor):
            t = X.detach()
        else:
            arr = np.asarray(X)
            if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                           or arr.dtype == bool):
                raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
            t = torch.from_numpy(np.array(arr, dtype=np.float64))
        if t.is_complex():
            raise ValueError(f"{name} must be real, got {t.dtype}")
        if t.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape "
                             f"{tuple(t.shape)}; use X.reshape(-1, 1) for a single feature")
        if t.shape[0] == 0 or t.shape[1] == 0:
            raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); pass at least one sample "
                             "with at least one feature")
        device = self.device if self.device is not None else t.device
        t = t.to(device=device, dtype=self.dtype)
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or infinity; drop or impute those rows first")
        if n_features is not None and t.shape[1] != n_features:
            raise ValueError(f"{name} has {t.shape[1]} features but this DPGMM expects "
                             f"{n_features}")
        return t

    def _require_fitted(self) -> _Params:
        if self._params is None:
            raise ValueError("this DPGMM is not fitted yet; call fit(X) or load_state_dict first")
        return self._params

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or ``load_state_dict`` of a fitted state) has run."""
        return self._params is not None

    @property
    def n_features_in_(self) -> int | None:
        """The dimension d_t, once known from a fit or from a user-supplied prior."""
        if self._params is not None:
            return int(self._params.m.shape[1])
        return self._prior_features()

    def _prior_features(self) -> int | None:
        for prior in (self.mean_prior, self.covariance_prior):
            if prior is not None:
                return int(prior.shape[0])
        return None

    # ------------------------------------------------------------------ fitting

    def _resolve_priors(self, X: Tensor) -> None:
        """The priors in effect (scikit-learn's trailing-underscore attributes)."""
        n, d = X.shape
        K = self.n_components
        self.weight_concentration_prior_ = float(
            1.0 / K if self.weight_concentration_prior is None else self.weight_concentration_prior)
        self.mean_precision_prior_ = float(
            1.0 if self.mean_precision_prior is None else self.mean_precision_prior)
        nu0 = float(d if self.degrees_of_freedom_prior is None else self.degrees_of_freedom_prior)
        if nu0 <= d - 1:
            raise ValueError(f"degrees_of_freedom_prior must be greater than n_features - 1 = "
                             f"{d - 1}, got {nu0}")
        self.degrees_of_freedom_prior_ = nu0
        if self.mean_prior is None:
            self.mean_prior_ = X.mean(0)
        else:
            self.mean_prior_ = self.mean_prior.to(X.device, X.dtype)
        if self.covariance_prior is None:
            if n < 2:
                raise ValueError("the data-dependent covariance_prior needs at least 2 samples; "
                                 "pass covariance_prior or use DPGMM.paper_prior")
            cov = torch.cov(X.T).reshape(d, d)
            if _singular_to_rounding(X, cov):
                raise ValueError("the data covariance is singular (e.g. a constant feature, "
                                 "identical or collinear points), so the data-dependent "
                                 "covariance_prior is not positive definite; pass "
                                 "covariance_prior or use DPGMM.paper_prior")
            self.covariance_prior_ = cov
        else:
            self.covariance_prior_ = self.covariance_prior.to(X.device, X.dtype)

    def _generator(self, device: torch.device) -> torch.Generator:
        gen = torch.Generator(device=device)
        if self.random_state is None:
            gen.seed()
        else:
            gen.manual_seed(int(self.random_state))
        return gen

    def fit(self, X: Any, y: Any = None, *, init_resp: Any = None) -> DPGMM:
        """Maximise the bound L(t; xi) of Eq (6) over xi by CAVI; X is (N, d), numpy or torch.

        ``n_init`` initialisations (one, and none on a warm start) from ``init_params``, or from
        the responsibilities ``init_resp`` (N, K) when given; keeps the one with the best bound."""
        self._fit(X, init_resp)
        return self

    def fit_predict(self, X: Any, y: Any = None, *, init_resp: Any = None) -> Tensor:
        """``fit(X)`` then the labels of X under the fitted model."""
        return self._fit(X, init_resp)

    def _fit(self, X: Any, init_resp: Any) -> Tensor:
        warm = bool(self.warm_start) and self.is_fitted
        X = self._check_X(X, self.n_features_in_ if warm else self._prior_features())
        self.device = X.device
        n, d = X.shape
        K = self.n_components
        if init_resp is not None:
            if warm:
                raise ValueError("init_resp cannot be combined with a warm start; set "
                                 "warm_start=False to re-initialise")
            init_resp = (init_resp.detach() if isinstance(init_resp, Tensor)
                         else torch.as_tensor(np.asarray(init_resp, dtype=np.float64)))
            init_resp = init_resp.to(X.device, self.dtype)
            if init_resp.shape != (n, K) or not bool(torch.isfinite(init_resp).all()) or bool(
                    (init_resp < 0).any()):
                raise ValueError(f"init_resp must be a finite, non-negative ({n}, {K}) array")
        self._resolve_priors(X)
        center = X.mean(0)
        Xc = X - center
        phi = quadratic_features(Xc)  # log rho_ik and sum_i r_ik phi(x_i): single products
        gen = self._generator(X.device)
        # as scikit-learn, a warm start's first iteration is compared with the previous fit's bound
        previous = self.lower_bound_ if warm else -math.inf
        best: tuple[float, _Params, list[float], int, bool] | None = None
        for _ in range(1 if warm else self.n_init):
            if warm:
                params = self._centered(self._require_fitted(), center)
            else:
                resp = init_resp if init_resp is not None else self._init_resp(Xc, gen)
                params = self._m_step(resp.T @ phi, center)
            lower_bound, bounds, converged = previous, [], False
            for _ in range(self.max_iter):
                resp, entropy = self._e_step(phi, params)
                stats = resp.T @ phi
                params = self._m_step(stats, center)
                new_bound = float(self._bound(stats, entropy, params, center))
                change, lower_bound = new_bound - lower_bound, new_bound
                bounds.append(new_bound)
                if abs(change) / (n if self.tol_per_sample else 1) < self.tol:
                    converged = True
                    break
            if not bounds:  # max_iter=0 computes no bound, as in scikit-learn
                lower_bound = -math.inf
            if best is None or lower_bound > best[0]:
                best = (lower_bound, params, bounds, len(bounds), converged)
        assert best is not None
        self.lower_bound_, params, self.lower_bounds_, self.n_iter_, self.converged_ = best
        if not self.converged_ and self.max_iter > 0:
            warnings.warn("DPGMM did not converge; increase max_iter or tol, or check for "
                          "degenerate data", ConvergenceWarning, stacklevel=3)
        self._set_params(params, center)
        return self._log_rho(phi, self._centered(self._params, center)).argmax(1)

    def _init_resp(self, Xc: Tensor, gen: torch.Generator) -> Tensor:
        """Initial responsibilities, as scikit-learn's ``init_params`` (k-means on the device)."""
        n, K = Xc.shape[0], self.n_components
        resp = torch.zeros(n, K, dtype=Xc.dtype, device=Xc.device)
        if self.init_params == "random":
            resp = torch.rand(n, K, generator=gen, dtype=Xc.dtype, device=Xc.device)
            return resp / resp.sum(1, keepdim=True)
        if n <= K:  # one point per component; the others start empty
            perm = torch.randperm(n, generator=gen, device=Xc.device)
            resp[torch.arange(n, device=Xc.device), perm] = 1.0
            return resp
        if self.init_params == "random_from_data":
            idx = torch.randperm(n, generator=gen, device=Xc.device)[:K]
            resp[idx, torch.arange(K, device=Xc.device)] = 1.0
        elif self.init_params == "k-means++":
            idx = _kmeans_plusplus(Xc, K, gen)
            resp[idx, torch.arange(K, device=Xc.device)] = 1.0
        else:
            resp[torch.arange(n, device=Xc.device), _kmeans(Xc, K, gen)] = 1.0
        return resp

    def _m_step(self, stats: Tensor, center: Tensor) -> _Params:
        """q(v) (Blei & Jordan 2006's stick updates) and q(mu, Lambda) (Bishop 10.58-10.63) given the
        statistics [sum_i r_ik x x^T, sum_i r_ik x, N_k]; covariances are scikit-learn's
        (W_k nu_k)^-1 with ``reg_covar`` added to the scatter matrices."""
        K, d = stats.shape[0], self.mean_prior_.shape[0]
        nq = d * (d + 1) // 2
        iu = torch.triu_indices(d, d, device=stats.device)
        nk = stats[:, -1] + 10 * torch.finfo(stats.dtype).eps
        xbar = stats[:, nq:nq + d] / nk[:, None]
        second = stats.new_zeros(K, d, d)
        second[:, iu[0], iu[1]] = stats[:, :nq]
        second[:, iu[1], iu[0]] = stats[:, :nq]
        alpha0, beta0, nu0 = (self.weight_concentration_prior_, self.mean_precision_prior_,
                              self.degrees_of_freedom_prior_)
        m0 = self.mean_prior_ - center
        tail = torch.cat([torch.flip(torch.cumsum(torch.flip(nk, [0]), 0), [0])[1:],
                          nk.new_zeros(1)])
        beta = beta0 + nk
        nu = nu0 + nk
        diff = xbar - m0
        eye = torch.eye(d, dtype=stats.dtype, device=stats.device)
        scale_inv = (self.covariance_prior_ + second - nk[:, None, None] * xbar[:, :, None]
                     * xbar[:, None, :] + (nk * self.reg_covar)[:, None, None] * eye
                     + (nk * beta0 / beta)[:, None, None] * diff[:, :, None] * diff[:, None, :])
        cov = scale_inv / nu[:, None, None]
        cov = 0.5 * (cov + cov.mT)
        chol_cov, info = torch.linalg.cholesky_ex(cov)
        if bool((info != 0).any()):
            raise ValueError("a component covariance is not positive definite (ill-conditioned "
                             "data); increase reg_covar or rescale the data")
        chol = torch.linalg.solve_triangular(chol_cov, eye.expand(K, d, d), upper=False).mT
        return _Params(1.0 + nk, alpha0 + tail, beta, (beta0 * m0 + nk[:, None] * xbar)
                       / beta[:, None], nu, cov, chol)

    @staticmethod
    def _expectations(p: _Params) -> dict[str, Tensor]:
        """E[log w_k] (stick breaking), log|E[Lambda_k]| and E[log|Lambda_k|] (Bishop 10.65)."""
        d = p.m.shape[1]
        dig_sum = torch.digamma(p.g1 + p.g2)
        elog_v = torch.digamma(p.g1) - dig_sum
        elog_1mv = torch.digamma(p.g2) - dig_sum
        elog_w = elog_v + torch.cat([elog_1mv.new_zeros(1), torch.cumsum(elog_1mv, 0)[:-1]])
        logdet_prec = 2.0 * torch.log(torch.diagonal(p.chol, dim1=-2, dim2=-1)).sum(-1)
        i = torch.arange(d, dtype=p.nu.dtype, device=p.nu.device)
        elog_lam = (torch.digamma(0.5 * (p.nu[:, None] - i)).sum(-1) + d * math.log(2.0)
                    + logdet_prec - d * torch.log(p.nu))
        return {"elog_v": elog_v, "elog_1mv": elog_1mv, "elog_w": elog_w,
                "logdet_prec": logdet_prec, "elog_lam": elog_lam,
                "prec": p.chol @ p.chol.mT}

    def _coefficients(self, p: _Params, e: dict[str, Tensor]) -> Tensor:
        """C (K, p) with log rho_ik = phi(x_i) . C_k = E[log w_k] + E[log N(x_i | mu_k, Lambda_k^-1)]
        (Bishop 10.46 with 10.64-10.65)."""
        d = p.m.shape[1]
        iu = torch.triu_indices(d, d, device=p.m.device)
        prec = e["prec"]
        quad = prec[:, iu[0], iu[1]] * torch.where(iu[0] == iu[1], -0.5, -1.0).to(prec.dtype)
        pm = (prec @ p.m[:, :, None]).squeeze(-1)
        const = (e["elog_w"] + 0.5 * e["elog_lam"] - 0.5 * d * _LOG_2PI - 0.5 * d / p.beta
                 - 0.5 * (p.m * pm).sum(-1))
        return torch.cat([quad, pm, const[:, None]], 1)

    def _log_rho(self, phi: Tensor, p: _Params) -> Tensor:
        return phi @ self._coefficients(p, self._expectations(p)).T

    def _e_step(self, phi: Tensor, p: _Params) -> tuple[Tensor, Tensor]:
        """E-step: r_ik = rho_ik / sum_j rho_ij (Bishop 10.49) and the entropy -sum r log r,
        in place on one (N, K) buffer: with s_i = sum_k exp(log rho_ik - max_k log rho_ik),
        -sum r log r = -sum r (log rho - max) + sum_i log s_i, two non-negative terms."""
        shifted = self._log_rho(phi, p)
        shifted -= shifted.amax(1, keepdim=True)
        resp = shifted.exp()
        norm = resp.sum(1, keepdim=True)
        resp /= norm
        entropy = torch.log(norm).sum() - torch.dot(resp.reshape(-1), shifted.reshape(-1))
        return resp, entropy

    def _bound(self, stats: Tensor, entropy: Tensor, p: _Params, center: Tensor) -> Tensor:
        """L(t; xi) of Eq (6), all terms: E[log p(t | k, mu, Lambda)] + E[log p(k | v)] - E[log q(k)]
        + E[log p(v)] - E[log q(v)] + E[log p(mu, Lambda)] - E[log q(mu, Lambda)]
        (Bishop 10.70-10.77, with the Beta sticks of Blei & Jordan 2006)."""
        d = p.m.shape[1]
        e = self._expectations(p)
        data = (stats * self._coefficients(p, e)).sum() + entropy
        alpha0, beta0, nu0 = (self.weight_concentration_prior_, self.mean_precision_prior_,
                              self.degrees_of_freedom_prior_)
        lbeta = torch.lgamma(p.g1) + torch.lgamma(p.g2) - torch.lgamma(p.g1 + p.g2)
        sticks = (math.log(alpha0) + (alpha0 - 1.0) * e["elog_1mv"] + lbeta
                  - (p.g1 - 1.0) * e["elog_v"] - (p.g2 - 1.0) * e["elog_1mv"]).sum()
        prec = e["prec"]
        dm = p.m - (self.mean_prior_ - center)
        logdet_prior = 2.0 * torch.log(torch.diagonal(
            torch.linalg.cholesky(self.covariance_prior_))).sum()
        nu0_t = torch.tensor([nu0], dtype=p.nu.dtype, device=p.nu.device)
        log_b0 = _log_wishart_norm(logdet_prior, nu0_t, d)
        log_bk = _log_wishart_norm(d * torch.log(p.nu) - e["logdet_prec"], p.nu, d)
        normal = (0.5 * d * torch.log(beta0 / p.beta) - 0.5 * beta0 * d / p.beta + 0.5 * d
                  - 0.5 * beta0 * torch.einsum("ki,kij,kj->k", dm, prec, dm))
        wishart = (log_b0 - log_bk + 0.5 * (nu0 - p.nu) * e["elog_lam"]
                   - 0.5 * torch.einsum("ij,kji->k", self.covariance_prior_, prec)
                   + 0.5 * p.nu * d)
        return data + sticks + (normal + wishart).sum()

    def _centered(self, p: _Params, center: Tensor) -> _Params:
        return _Params(p.g1, p.g2, p.beta, p.m - center, p.nu, p.cov, p.chol)

    def _set_params(self, p: _Params, center: Tensor) -> None:
        """Store xi with means in data coordinates; expose scikit-learn's attribute names."""
        self._params = _Params(p.g1, p.g2, p.beta, p.m + center, p.nu, p.cov, p.chol)
        self._cache = {}

    # ---------------------------------------------------------- fitted attributes

    @property
    def weight_concentration_(self) -> tuple[Tensor, Tensor]:
        """(gamma_k1, gamma_k2) of the Beta sticks q(v_k)."""
        p = self._require_fitted()
        return p.g1, p.g2

    @property
    def mean_precision_(self) -> Tensor:
        return self._require_fitted().beta

    @property
    def means_(self) -> Tensor:
        return self._require_fitted().m

    @property
    def degrees_of_freedom_(self) -> Tensor:
        return self._require_fitted().nu

    @property
    def covariances_(self) -> Tensor:
        """E[Lambda_k]^-1 = (nu_k W_k)^-1, (K, d, d)."""
        return self._require_fitted().cov

    @property
    def precisions_cholesky_(self) -> Tensor:
        """Upper-triangular U_k with U_k U_k^T = E[Lambda_k] (scikit-learn's convention)."""
        return self._require_fitted().chol

    @property
    def precisions_(self) -> Tensor:
        p = self._require_fitted()
        return p.chol @ p.chol.mT

    @property
    def weights_(self) -> Tensor:
        """E_q[w_k] of the stick-breaking weights, renormalised over the K components."""
        p = self._require_fitted()
        frac = p.g1 / (p.g1 + p.g2)
        rest = p.g2 / (p.g1 + p.g2)
        w = frac * torch.cat([rest.new_ones(1), torch.cumprod(rest[:-1], 0)])
        return w / w.sum()

    # ---------------------------------------------------------------- densities

    def _derived(self, dtype: torch.dtype, device: torch.device) -> dict[str, Tensor]:
        """Per-component constants for ``log_prob``, built once per (dtype, device) after a fit."""
        key = (dtype, torch.device(device))
        if key not in self._cache:
            p = self._require_fitted()
            e = self._expectations(p)
            K, d = p.m.shape
            w = self.weights_
            center = w @ p.m
            nu_t = p.nu + 1.0 - d
            c = nu_t * p.beta / ((1.0 + p.beta) * p.nu)  # Student-t precision = c E[Lambda]
            # For small d, (t - m_k)^T E[Lambda_k] (t - m_k) is one product phi(u) @ maha_weights
            # with the quadratic features phi(u) = [u_i u_j (i <= j), u_i, 1] of u = t - center:
            # an (N, F) @ (F, K) matrix product instead of elementwise passes over (N, K, d). Its
            # terms cancel for tight components, so that product is taken in float64. For large d,
            # F ~ d^2/2 outgrows d K and the Cholesky form below is cheaper.
            prec = p.chol @ p.chol.mT  # E[Lambda_k]
            mc = p.m - center
            iu = torch.triu_indices(d, d, device=prec.device)
            pair_factor = torch.where(iu[0] == iu[1], 1.0, 2.0).to(prec.dtype)
            quadratic = prec[:, iu[0], iu[1]] * pair_factor
            linear = -2.0 * (prec @ mc[:, :, None]).squeeze(-1)
            constant = (mc[:, None, :] @ prec @ mc[:, :, None]).reshape(K, 1)
            base = {
                "center": center,
                "maha_weights": torch.cat([quadratic, linear, constant], 1).T.contiguous(),
                "chol_cat": p.chol.permute(1, 0, 2).reshape(d, K * d),
                "m_chol": (mc[:, None, :] @ p.chol).squeeze(1),
                "bound": e["elog_w"] + 0.5 * e["elog_lam"] - 0.5 * d * _LOG_2PI - 0.5 * d / p.beta,
                "plugin": torch.log(w) + 0.5 * e["logdet_prec"] - 0.5 * d * _LOG_2PI,
                "predictive": (torch.log(w) + torch.lgamma(0.5 * (nu_t + d))
                               - torch.lgamma(0.5 * nu_t) - 0.5 * d * torch.log(nu_t * math.pi)
                               + 0.5 * (e["logdet_prec"] + d * torch.log(c))),
                "t_power": 0.5 * (nu_t + d),
                "t_scale": c / nu_t,
            }
            maha_weights = base.pop("maha_weights")
            exact = {  # float64 whatever the points' dtype: the quadratic form's terms cancel
                "maha_weights": maha_weights,
                "center64": center,
                # a_k = c_k - maha_k / 2 as one product phi(u) @ affine (the constant feature
                # is last), for the fused log_prob of the training kinds
                **{f"affine_{kind}": torch.cat([-0.5 * maha_weights[:-1],
                                                 base[kind][None] - 0.5 * maha_weights[-1:]])
                   for kind in _FUSED_KINDS},
                "prec_flat": prec.reshape(K, d * d),
                "prec_m": (prec @ mc[:, :, None]).squeeze(-1),
            }
            self._cache[key] = {k: v.to(device=device, dtype=dtype) for k, v in base.items()}
            self._cache[key].update({k: v.to(device, torch.float64) for k, v in exact.items()})
        return self._cache[key]

    @staticmethod
    def _mahalanobis(flat: Tensor, c: dict[str, Tensor],
                     max_quadratic_d: int = MAX_QUADRATIC_D) -> Tensor:
        """(N, K) squared Mahalanobis distances of the rows of ``flat`` under E[Lambda_k]."""
        n, d = flat.shape
        if d <= max_quadratic_d:
            u = _offset64(flat, c["center64"])
            return (quadratic_features(u) @ c["maha_weights"]).clamp_min(0.0).to(flat.dtype)
        k = c["m_chol"].shape[0]
        with torch.autocast(flat.device.type, enabled=False):  # in t's dtype under bf16 training
            y = ((flat - c["center"]) @ c["chol_cat"]).view(n, k, d) - c["m_chol"]
        return y.square().sum(-1)

    def _points(self, t: Any, kind: str) -> Tensor:
        """``t`` checked for ``log_prob``: a floating tensor of shape (..., d) (arrays converted)."""
        if kind not in LOG_PROB_KINDS:
            raise ValueError(f"kind must be one of {LOG_PROB_KINDS}, got {kind!r}")
        d = self._require_fitted().m.shape[1]
        if not isinstance(t, Tensor):
            t = torch.as_tensor(np.asarray(t), dtype=self.dtype, device=self.device)
        if not t.is_floating_point():
            raise ValueError(f"t must be a floating tensor, got {t.dtype}")
        if t.ndim == 0 or t.shape[-1] != d:
            raise ValueError(f"t must have shape (..., {d}), got {tuple(t.shape)}")
        return t

    def _component_log_prob(self, t: Tensor, kind: str) -> Tensor:
        """(..., K) per-component terms whose logsumexp is ``log_prob(t, kind)``, for points
        already checked (:meth:`_points`, :meth:`_check_X`) by a fitted model."""
        K, d = self._params.m.shape
        c = self._derived(t.dtype, t.device)
        maha = self._mahalanobis(t.reshape(-1, d), c)  # (t - m_k)^T E[Lambda_k] (t - m_k)
        if kind == "predictive":
            out = c["predictive"] - c["t_power"] * torch.log1p(c["t_scale"] * maha)
        else:
            out = c[kind] - 0.5 * maha
        return out.view(*t.shape[:-1], K)

    def log_prob(self, t: Tensor, kind: str = "bound") -> Tensor:
        """log p(t) of shape t.shape[:-1], differentiable in t, in t's dtype and on t's device.

        * ``"bound"``: the per-point term of L(t; xi) (Eq (6)) that Eq (7) puts in place of
          log p(t): log sum_k exp(E_q[log w_k] + E_q[log N(t | mu_k, Lambda_k^-1)]); a lower bound
          on the log marginal density (Jensen), not normalised.
        * ``"plugin"``: log sum_k w_k N(t | m_k, covariances_k), the reference code's GMM density.
        * ``"predictive"``: the posterior predictive, sum_k w_k St(t | m_k, L_k, nu_k + 1 - d)
          (Bishop 10.81-10.82).

        NaN in t gives NaN out; no check here, as it runs every training step. An infinite
        coordinate, or a point whose distance to every component overflows t's dtype, gives -inf
        (density 0). The training kinds ("bound", "plugin") in up to ``MAX_QUADRATIC_D``
        dimensions take a fused path with the same values and a hand-written gradient
        (:class:`_QuadraticLogSumExp`)."""
        t = self._points(t, kind)
        d = t.shape[-1]
        if kind in _FUSED_KINDS and d <= MAX_QUADRATIC_D:
            c = self._derived(t.dtype, t.device)
            out = _QuadraticLogSumExp.apply(t.reshape(-1, d), c["center64"], c[f"affine_{kind}"],
                                            c["prec_flat"], c["prec_m"])
            out = out.view(t.shape[:-1])
        else:
            out = logsumexp(self._component_log_prob(t, kind), -1)
        if t.dtype == torch.float64 or d > MAX_QUADRATIC_D:
            # NaN from a point without NaN is an overflow to inf - inf of its distances (an
            # infinite coordinate, or one past ~1e154); below float64 in up to MAX_QUADRATIC_D
            # dimensions (the training path) the float64 distances cannot overflow (_offset64)
            out = out.masked_fill(out.isnan() & ~t.isnan().any(-1), -math.inf)
        return out

    def score_samples(self, X: Any) -> Tensor:
        """scikit-learn's ``score_samples``: ``log_prob(X, "bound")`` per row, in ``dtype``."""
        self._require_fitted()
        return self.log_prob(self._check_X(X, self.n_features_in_), "bound")

    def score(self, X: Any, y: Any = None) -> float:
        """The mean of ``score_samples(X)``."""
        return float(self.score_samples(X).mean())

    def _weighted_log_prob(self, X: Any) -> Tensor:
        """log rho_ik = E[log w_k] + E[log N(x_i | mu_k, Lambda_k^-1)] for checked X, (N, K)."""
        self._require_fitted()
        return self._component_log_prob(self._check_X(X, self.n_features_in_), "bound")

    def predict_proba(self, X: Any) -> Tensor:
        """Responsibilities r_ik (Bishop 10.49), (N, K)."""
        return torch.softmax(self._weighted_log_prob(X), -1)

    def predict(self, X: Any) -> Tensor:
        """The most responsible component of each row, (N,) int64."""
        return self._weighted_log_prob(X).argmax(-1)

    def sample(self, n_samples: int = 1) -> tuple[Tensor, Tensor]:
        """(X, labels): n_samples draws from sum_k weights_k N(means_k, covariances_k), in random
        order (scikit-learn groups them by component), from a torch.Generator seeded with
        ``random_state`` (None: fresh entropy)."""
        p = self._require_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
                or n_samples < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
        gen = self._generator(p.m.device)
        labels = torch.multinomial(self.weights_, int(n_samples), replacement=True, generator=gen)
        d = p.m.shape[1]
        eye = torch.eye(d, dtype=p.chol.dtype, device=p.chol.device)
        chol_cov = torch.linalg.solve_triangular(p.chol, eye.expand_as(p.chol), upper=True).mT
        noise = torch.randn(int(n_samples), d, 1, generator=gen, dtype=p.m.dtype,
                            device=p.m.device)
        return p.m[labels] + (chol_cov[labels] @ noise).squeeze(-1), labels

    # ----------------------------------------------------------------- pruning

    def active_components(self, threshold: float = 0.01) -> Tensor:
        """Indices of the components with weight >= threshold (the reference code keeps >= 0.01
        for plots and its saved GM_prior_info)."""
        return torch.nonzero(self.weights_ >= threshold).flatten()

    def active_mixture(self, threshold: float = 0.01) -> tuple[Tensor, Tensor, Tensor]:
        """(weights renormalised, means, covariances) of :meth:`active_components`."""
        idx = self.active_components(threshold)
        if idx.numel() == 0:
            raise ValueError(f"no component has weight >= {threshold}; the largest is "
                             f"{float(self.weights_.max()):.3g}")
        w = self.weights_[idx]
        return w / w.sum(), self.means_[idx], self.covariances_[idx]

    # ------------------------------------------------------------ persistence

    def to(self, device: str | torch.device) -> DPGMM:
        """Move the fitted state to ``device`` (caches are rebuilt lazily); returns self."""
        self.device = torch.device(device)
        if self._params is not None:
            p = self._params
            self._params = _Params(*(getattr(p, f).to(self.device) for f in
                                     ("g1", "g2", "beta", "m", "nu", "cov", "chol")))
            self.mean_prior_ = self.mean_prior_.to(self.device)
            self.covariance_prior_ = self.covariance_prior_.to(self.device)
        self._cache = {}
        return self

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain Python data only (safe for ``torch.load(weights_only=True)``): the
        constructor hyper-parameters and, once fitted, xi, the priors in effect and the fit log."""
        hyper = {name: getattr(self, name) for name in _HYPER}
        for name in ("mean_prior", "covariance_prior"):
            hyper[name] = None if hyper[name] is None else hyper[name].clone()
        hyper["dtype"] = str(self.dtype).replace("torch.", "")
        for name in ("n_components", "max_iter", "n_init", "random_state"):
            hyper[name] = None if hyper[name] is None else int(hyper[name])
        for name in ("tol", "reg_covar", "weight_concentration_prior", "mean_precision_prior",
                     "degrees_of_freedom_prior"):
            hyper[name] = None if hyper[name] is None else float(hyper[name])
        hyper["warm_start"], hyper["tol_per_sample"] = bool(self.warm_start), bool(
            self.tol_per_sample)
        fitted = None
        if self._params is not None:
            p = self._params
            fitted = {
                "weight_concentration_a": p.g1, "weight_concentration_b": p.g2,
                "mean_precision_": p.beta, "means_": p.m, "degrees_of_freedom_": p.nu,
                "covariances_": p.cov, "precisions_cholesky_": p.chol,
                "mean_prior_": self.mean_prior_, "covariance_prior_": self.covariance_prior_,
                "weight_concentration_prior_": self.weight_concentration_prior_,
                "mean_precision_prior_": self.mean_precision_prior_,
                "degrees_of_freedom_prior_": self.degrees_of_freedom_prior_,
                "lower_bound_": float(self.lower_bound_),
                "lower_bounds_": [float(b) for b in self.lower_bounds_],
                "converged_": bool(self.converged_), "n_iter_": int(self.n_iter_),
            }
            fitted = {k: v.detach().clone() if isinstance(v, Tensor) else v
                      for k, v in fitted.items()}
        return {"format": _STATE_FORMAT, "version": _STATE_VERSION, "hyper": hyper,
                "fitted": fitted}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved, onto ``self.device`` where it is set. Raises
        ValueError, in one line naming the entry, for another format, another n_components or
        n_features, or a damaged state (missing or unknown keys, wrong shapes or types, NaN or
        infinity, parameters out of range, covariances that are not positive definite)."""
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise ValueError("not a DPGMM state_dict (missing format key "
                             f"{_STATE_FORMAT!r}); pass the dict DPGMM.state_dict() returned")
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"DPGMM state version {state.get('version')!r} is not supported "
                             f"(expected {_STATE_VERSION})")
        hyper, fitted = state.get("hyper"), state.get("fitted")
        _check_keys(hyper, set(_HYPER), "'hyper'")
        if hyper["n_components"] != self.n_components:
            raise ValueError(f"the state has n_components={hyper['n_components']} but this DPGMM "
                             f"has {self.n_components}; build it with the state's value")
        d_self = self.n_features_in_
        try:
            new = DPGMM(**hyper, device=self.device)  # validates the hyper-parameters
        except ValueError as err:
            raise _damaged(f"'hyper': {err}") from None
        if fitted is not None:
            new._load_fitted(fitted, device=self.device)
        d_state = new.n_features_in_
        if d_self is not None and d_state is not None and d_self != d_state:
            raise ValueError(f"the state has n_features={d_state} but this DPGMM has {d_self}")
        self.__dict__.clear()
        self.__dict__.update(new.__dict__)

    def _load_fitted(self, fitted: dict[str, Any], device: torch.device | None) -> None:
        """Check the fitted part of a state entry by entry (keys, types, shapes, finiteness,
        the ranges of xi and SPD covariances), then restore it."""
        scalars = ("weight_concentration_prior_", "mean_precision_prior_",
                   "degrees_of_freedom_prior_")
        _check_keys(fitted, set(_FITTED_TENSORS) | set(scalars) | {
            "lower_bound_", "lower_bounds_", "converged_", "n_iter_"}, "'fitted'")
        for name in _FITTED_TENSORS:
            value = fitted[name]
            if not isinstance(value, Tensor) or not value.is_floating_point():
                got = value.dtype if isinstance(value, Tensor) else type(value).__name__
                raise _damaged(f"entry {name} must be a floating tensor, got {got}")
        K = self.n_components
        means = fitted["means_"]
        if means.ndim != 2 or means.shape[0] != K or means.shape[1] == 0:
            raise _damaged(f"entry means_ must have shape ({K}, d), got {tuple(means.shape)}")
        d = means.shape[1]
        shapes = {"weight_concentration_a": (K,), "weight_concentration_b": (K,),
                  "mean_precision_": (K,), "degrees_of_freedom_": (K,),
                  "covariances_": (K, d, d), "precisions_cholesky_": (K, d, d),
                  "mean_prior_": (d,), "covariance_prior_": (d, d)}
        for name, shape in shapes.items():
            if tuple(fitted[name].shape) != shape:
                raise _damaged(f"entry {name} must have shape {shape}, got "
                               f"{tuple(fitted[name].shape)}")
        if self._prior_features() not in (None, d):
            raise _damaged(f"'hyper' has priors of {self._prior_features()} features but the "
                           f"fitted means_ have {d}")
        dev = device if device is not None else means.device
        t = {name: fitted[name].to(device=dev, dtype=self.dtype) for name in _FITTED_TENSORS}
        for name, value in t.items():
            if not bool(torch.isfinite(value).all()):
                raise _damaged(f"entry {name} contains NaN or infinity (in {self.dtype})")
        for name in scalars:
            value = fitted[name]
            low = d - 1 if name == "degrees_of_freedom_prior_" else 0
            if not _is_real(value) or not low < value < math.inf:
                raise _damaged(f"entry {name} must be a finite number > {low}, got {value!r}")
        for name, low in (("weight_concentration_a", 0), ("weight_concentration_b", 0),
                          ("mean_precision_", 0), ("degrees_of_freedom_", d - 1)):
            if not bool((t[name] > low).all()):
                raise _damaged(f"entry {name} must be > {low} everywhere, got "
                               f"{t[name].min().item():.6g} at component "
                               f"{int(t[name].argmin())}")
        for name in ("covariances_", "covariance_prior_"):  # symmetric to rounding in dtype
            problems = _spd_problems(t[name], rtol=torch.finfo(self.dtype).eps ** 0.5)
            bad = [k for k, problem in enumerate(problems) if problem]
            if bad:
                which = f" (components {bad[:10]})" if name == "covariances_" else ""
                raise _damaged(f"entry {name} is not {problems[bad[0]]}{which}")
        chol = t["precisions_cholesky_"]
        diag = torch.diagonal(chol, dim1=-2, dim2=-1)
        if not bool((chol.tril(-1) == 0).all() and (diag > 0).all()):
            raise _damaged("entry precisions_cholesky_ must be upper triangular with a positive "
                           "diagonal")
        bound, bounds = fitted["lower_bound_"], fitted["lower_bounds_"]
        if not _is_real(bound) or not bound < math.inf:  # -inf: fitted with max_iter=0
            raise _damaged(f"entry lower_bound_ must be a number below inf, got {bound!r:.60}")
        if not isinstance(bounds, (list, tuple)) or not all(
                _is_real(b) and math.isfinite(b) for b in bounds):
            raise _damaged("entry lower_bounds_ must be a list of finite numbers")
        if not isinstance(fitted["converged_"], bool):
            raise _damaged(f"entry converged_ must be a bool, got {fitted['converged_']!r:.60}")
        n_iter = fitted["n_iter_"]
        if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
            raise _damaged(f"entry n_iter_ must be an int >= 0, got {n_iter!r:.60}")
        self.device = torch.device(dev)
        self._params = _Params(t["weight_concentration_a"], t["weight_concentration_b"],
                               t["mean_precision_"], t["means_"], t["degrees_of_freedom_"],
                               t["covariances_"], t["precisions_cholesky_"])
        self.mean_prior_, self.covariance_prior_ = t["mean_prior_"], t["covariance_prior_"]
        self.weight_concentration_prior_ = float(fitted["weight_concentration_prior_"])
        self.mean_precision_prior_ = float(fitted["mean_precision_prior_"])
        self.degrees_of_freedom_prior_ = float(fitted["degrees_of_freedom_prior_"])
        self.lower_bound_ = float(bound)
        self.lower_bounds_ = [float(b) for b in bounds]
        self.converged_, self.n_iter_ = fitted["converged_"], int(n_iter)

    def __repr__(self) -> str:
        state = f"fitted, d={self.n_features_in_}" if self.is_fitted else "not fitted"
        return (f"DPGMM(n_components={self.n_components}, "
                f"weight_concentration_prior={self.weight_concentration_prior}, {state}, "
                f"device={self.device})")


def _offset64(t: Tensor, center: Tensor) -> Tensor:
    """t - center in float64 with infinite coordinates clamped to t's largest finite value. Below
    float64 the quadratic form of such an offset still fits in float64, and in t's dtype it is
    -inf (a density of 0) instead of the NaN of inf - inf."""
    big = torch.finfo(t.dtype).max
    return (t.double() - center).clamp_(-big, big)


class _QuadraticLogSumExp(torch.autograd.Function):
    """log sum_k exp(a_k(t)), a_k(t) = c_k - (u - m_k)^T P_k (u - m_k) / 2 with u = t - center,
    (m_k: the means less the same center) in one pass that keeps only u and the
    responsibilities r_k for the gradient

        d/du log sum_k exp(a_k) = sum_k r_k P_k (m_k - u) = sum_k r_k P_k m_k - (sum_k r_k P_k) u,

    two (N, K) products instead of autograd's trip back through every (N, K) intermediate. The
    exponents are floored as in :func:`ladder.numerics.logsumexp`; the quadratic form and the
    gradient's difference, whose terms cancel for tight components, are taken in float64."""

    @staticmethod
    def forward(ctx, t: Tensor, center: Tensor, affine: Tensor, prec_flat: Tensor,  # noqa: ANN001
                prec_m: Tensor) -> Tensor:
        u = _offset64(t, center)
        a = (quadratic_features(u) @ affine).to(t.dtype)
        top = a.amax(-1, keepdim=True)
        # a point too far for t's dtype has every a_k = -inf: shifted by the dtype's lowest value
        # instead, its r is uniform and its value -inf (not -inf - -inf = NaN)
        r = a.sub_(top.clamp(min=torch.finfo(a.dtype).min)).clamp_(min=EXPONENT_FLOOR).exp_()
        total = r.sum(-1, keepdim=True)
        out = (total.log() + top).squeeze(-1)
        ctx.save_for_backward(u, r.div_(total), prec_flat, prec_m)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # noqa: ANN001
        u, r, prec_flat, prec_m = ctx.saved_tensors
        w = (grad[:, None] * r).double()
        n, d = u.shape
        pull = (w @ prec_flat).view(n, d, d)  # sum_k w_k P_k
        grad_u = w @ prec_m - (pull @ u[:, :, None]).squeeze(-1)
        return grad_u.to(grad.dtype), None, None, None, None


def _sq_dist(X: Tensor, C: Tensor, x2: Tensor) -> Tensor:
    """Squared Euclidean distances (N, M) between rows of X and C, clamped at 0."""
    return (x2[:, None] - 2.0 * X @ C.T + (C * C).sum(1)[None]).clamp_min_(0.0)


def _kmeans_plusplus(X: Tensor, K: int, gen: torch.Generator) -> Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, 2 + log K local trials as in
    scikit-learn); indices of K rows of X. Zero potential (duplicates) falls back to uniform."""
    n = X.shape[0]
    x2 = (X * X).sum(1)
    idx = torch.empty(K, dtype=torch.long, device=X.device)
    idx[0] = torch.randint(n, (1,), generator=gen, device=X.device)[0]
    closest = _sq_dist(X, X[idx[:1]], x2)[:, 0]
    trials = 2 + int(math.log(K))
    for k in range(1, K):
        weights = closest + (closest.sum() <= 0).to(closest.dtype)
        cand = torch.multinomial(weights, trials, replacement=True, generator=gen)
        pot = torch.minimum(closest[None], _sq_dist(X, X[cand], x2).T)
        best = pot.sum(1).argmin()
        idx[k] = cand[best]
        closest = pot[best]
    return idx


def _kmeans(X: Tensor, K: int, gen: torch.Generator, max_iter: int = 300,
            tol: float = 1e-4) -> Tensor:
    """Lloyd's k-means from k-means++ seeds with scikit-learn's defaults (300 iterations; stop when
    the labels repeat or the squared centre shift is below tol times the mean feature variance);
    an empty cluster keeps its centre. Returns labels (N,)."""
    centers = X[_kmeans_plusplus(X, K, gen)]
    tol_abs = tol * float(X.var(0).mean()) if X.shape[0] > 1 else 0.0
    def assign(centers: Tensor) -> Tensor:
        dist = torch.addmm((centers * centers).sum(1), X, centers.T, alpha=-2.0)
        return dist.min(1).indices  # faster than argmin on CPU

    labels = None
    for _ in range(max_iter):
        new_labels = assign(centers)
        if labels is not None and torch.equal(new_labels, labels):
            break
        labels = new_labels
        counts = torch.bincount(labels, minlength=K).to(X.dtype)
        sums = torch.zeros_like(centers).index_add_(0, labels, X)
        new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1.0)[:, None], centers)
        shift = float((new - centers).square().sum())
        centers = new
        if shift <= tol_abs:
            break
    return assign(centers)
