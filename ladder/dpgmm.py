"""The variational DP-GMM hyper prior p(t) of Sec 3.2, fitted by CAVI on any torch device.

Model (Sec 3.2; Blei & Jordan 2006): a truncated stick-breaking Dirichlet-process mixture of K
full-covariance Gaussians,

    v_k ~ Beta(1, alpha_0),   w_k = v_k prod_{j<k} (1 - v_j),
    (mu_k, Lambda_k) ~ N(mu_k | m_0, (beta_0 Lambda_k)^-1) W(Lambda_k | W_0, nu_0),
    k_i ~ Cat(w),             t_i ~ N(mu_{k_i}, Lambda_{k_i}^-1),

with the mean-field family q(v_k) = Beta(gamma_k1, gamma_k2), q(mu_k, Lambda_k) =
N(mu_k | m_k, (beta_k Lambda_k)^-1) W(Lambda_k | W_k, nu_k), q(k_i) = Discrete(r_i). ``fit`` runs
coordinate ascent (CAVI): E-step, M-step and the bound L(t; xi) of Eq (6) with all its terms, one
plain function each in :mod:`ladder.dpgmm_cavi`. Every update is an exact coordinate maximiser,
so the bound never decreases; ``reg_covar`` (added to the scatter matrices, as scikit-learn does)
moves the Normal-Wishart update off the optimum, which costs O(reg_covar^2) in the bound. The
module here is the scikit-learn-style estimator around them: checks (:mod:`ladder.dpgmm_checks`),
initialisation (:mod:`ladder.dpgmm_init`), fitted attributes (:mod:`ladder.dpgmm_fitted`),
densities (:mod:`ladder.dpgmm_log_prob`) and persistence (:mod:`ladder.dpgmm_state`).

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
from typing import Any

import torch
from sklearn.exceptions import ConvergenceWarning
from torch import Tensor

from ladder.dpgmm_cavi import (
    ConjugatePrior,
    Posterior,
    coordinate_ascent,
    log_rho,
    m_step,
    sufficient_statistics,
)
from ladder.dpgmm_checks import (
    check_hyper,
    check_init_resp,
    check_log_prob_points,
    check_points,
    is_int,
    priors_in_effect,
)
from ladder.dpgmm_fitted import FittedAttributes
from ladder.dpgmm_init import initial_responsibilities
from ladder.dpgmm_log_prob import DensityTables, component_log_prob, density_tables, log_prob
from ladder.dpgmm_state import damaged, read_fitted, read_header, state_dict

__all__ = ["DPGMM"]


class DPGMM(FittedAttributes):
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
    Fitted attributes are torch tensors on that device, with scikit-learn's names
    (:class:`~ladder.dpgmm_fitted.FittedAttributes`).
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
        self.dtype, self.mean_prior, self.covariance_prior = check_hyper(self)
        self._params: Posterior | None = None
        self._cache: dict[tuple[torch.dtype, torch.device], DensityTables] = {}

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

    # ------------------------------------------------------------------ fitting

    def _resolve_priors(self, X: Tensor) -> None:
        """The priors in effect (scikit-learn's trailing-underscore attributes)."""
        (self.weight_concentration_prior_, self.mean_precision_prior_,
         self.degrees_of_freedom_prior_, self.mean_prior_, self.covariance_prior_) = \
            priors_in_effect(self, X)

    def _prior(self, center: Tensor) -> ConjugatePrior:
        """The priors in effect, with the mean prior relative to ``center``."""
        return ConjugatePrior(self.weight_concentration_prior_, self.mean_prior_ - center,
                     self.mean_precision_prior_, self.degrees_of_freedom_prior_,
                     self.covariance_prior_)

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
        """:func:`ladder.dpgmm_cavi.coordinate_ascent` from each start, on X less its mean; keeps
        the run with the best bound and returns the labels of X."""
        warm = bool(self.warm_start) and self.is_fitted
        X = check_points(X, self.n_features_in_ if warm else self._prior_features(), self.dtype,
                         self.device)
        self.device = X.device
        if init_resp is not None:
            if warm:
                raise ValueError("init_resp cannot be combined with a warm start; set "
                                 "warm_start=False to re-initialise")
            init_resp = check_init_resp(init_resp, X.shape[0], self.n_components, self.dtype,
                                        X.device)
        self._resolve_priors(X)
        center = X.mean(0)
        Xc, prior = X - center, self._prior(center)
        gen = self._generator(X.device)
        # as scikit-learn, a warm start's first iteration is compared with the previous fit's bound
        previous = self.lower_bound_ if warm else -math.inf
        best: tuple[float, Posterior, list[float], bool] | None = None
        for _ in range(1 if warm else self.n_init):
            if warm:
                q = self._require_fitted().shifted(-center)
            else:
                resp = init_resp if init_resp is not None else initial_responsibilities(
                    Xc, self.n_components, self.init_params, gen)
                q = m_step(sufficient_statistics(Xc, resp), prior, self.reg_covar)
            run = coordinate_ascent(Xc, q, prior, reg_covar=self.reg_covar,
                                    max_iter=self.max_iter, tol=self.tol,
                                    per_point=self.tol_per_sample, previous_bound=previous)
            # max_iter=0 computes no bound, as in scikit-learn
            bound = run.bounds[-1] if run.bounds else -math.inf
            if best is None or bound > best[0]:
                best = (bound, run.posterior, run.bounds, run.converged)
        assert best is not None
        self.lower_bound_, q, self.lower_bounds_, self.converged_ = best
        self.n_iter_ = len(self.lower_bounds_)
        if not self.converged_ and self.max_iter > 0:
            warnings.warn("DPGMM did not converge; increase max_iter or tol, or check for "
                          "degenerate data", ConvergenceWarning, stacklevel=3)
        self._set_posterior(q.shifted(center))
        return log_rho(Xc, q).argmax(1)

    def _set_posterior(self, q: Posterior) -> None:
        """Store xi (means in data coordinates); the density tables are rebuilt lazily."""
        self._params = q
        self._cache = {}

    # ---------------------------------------------------------------- densities

    def _tables(self, dtype: torch.dtype, device: torch.device) -> DensityTables:
        """The per-component constants of ``log_prob``, built once per (dtype, device) after a
        fit."""
        key = (dtype, torch.device(device))
        if key not in self._cache:
            self._cache[key] = density_tables(self._require_fitted(), dtype, device)
        return self._cache[key]

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
        (density 0). See :mod:`ladder.dpgmm_log_prob` for the fast paths."""
        t = check_log_prob_points(t, kind, self._require_fitted().m.shape[1], self.dtype,
                                  self.device)
        return log_prob(t, self._tables(t.dtype, t.device), kind)

    def score_samples(self, X: Any) -> Tensor:
        """scikit-learn's ``score_samples``: ``log_prob(X, "bound")`` per row, in ``dtype``."""
        self._require_fitted()
        return self.log_prob(self._checked(X), "bound")

    def score(self, X: Any, y: Any = None) -> float:
        """The mean of ``score_samples(X)``."""
        return float(self.score_samples(X).mean())

    def _checked(self, X: Any) -> Tensor:
        return check_points(X, self.n_features_in_, self.dtype, self.device)

    def _weighted_log_prob(self, X: Any) -> Tensor:
        """log rho_ik = E[log w_k] + E[log N(x_i | mu_k, Lambda_k^-1)] for checked X, (N, K)."""
        self._require_fitted()
        X = self._checked(X)
        return component_log_prob(X, self._tables(X.dtype, X.device), "bound")

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
        if not is_int(n_samples, 1):
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
        gen = self._generator(p.m.device)
        labels = torch.multinomial(self.weights_, int(n_samples), replacement=True, generator=gen)
        d = p.m.shape[1]
        eye = torch.eye(d, dtype=p.chol.dtype, device=p.chol.device)
        chol_cov = torch.linalg.solve_triangular(p.chol, eye.expand_as(p.chol), upper=True).mT
        noise = torch.randn(int(n_samples), d, 1, generator=gen, dtype=p.m.dtype,
                            device=p.m.device)
        return p.m[labels] + (chol_cov[labels] @ noise).squeeze(-1), labels

    # ------------------------------------------------------------ persistence

    def to(self, device: str | torch.device) -> DPGMM:
        """Move the fitted state to ``device`` (caches are rebuilt lazily); returns self."""
        self.device = torch.device(device)
        if self._params is not None:
            p = self._params
            self._params = Posterior(*(getattr(p, f).to(self.device) for f in
                                       ("g1", "g2", "beta", "m", "nu", "cov", "chol")))
            self.mean_prior_ = self.mean_prior_.to(self.device)
            self.covariance_prior_ = self.covariance_prior_.to(self.device)
        self._cache = {}
        return self

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain Python data only (safe for ``torch.load(weights_only=True)``): the
        constructor hyper-parameters and, once fitted, xi, the priors in effect and the fit log
        (:mod:`ladder.dpgmm_state`)."""
        return state_dict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved, onto ``self.device`` where it is set. Raises
        ValueError, in one line naming the entry, for another format, another n_components or
        n_features, or a damaged state (missing or unknown keys, wrong shapes or types, NaN or
        infinity, parameters out of range, covariances that are not positive definite)."""
        hyper, fitted = read_header(state, self.n_components)
        d_self = self.n_features_in_
        try:
            new = DPGMM(**hyper, device=self.device)  # validates the hyper-parameters
        except ValueError as err:
            raise damaged(f"'hyper': {err}") from None
        if fitted is not None:
            restored = read_fitted(fitted, new.n_components, new.dtype, new._prior_features(),
                                   self.device)
            new.__dict__.update({name: getattr(restored, name) for name in (
                "device", "mean_prior_", "covariance_prior_", "weight_concentration_prior_",
                "mean_precision_prior_", "degrees_of_freedom_prior_", "lower_bound_",
                "lower_bounds_", "converged_", "n_iter_")})
            new._set_posterior(restored.posterior)
        d_state = new.n_features_in_
        if d_self is not None and d_state is not None and d_self != d_state:
            raise ValueError(f"the state has n_features={d_state} but this DPGMM has {d_self}")
        self.__dict__.clear()
        self.__dict__.update(new.__dict__)

    def __repr__(self) -> str:
        state = f"fitted, d={self.n_features_in_}" if self.is_fitted else "not fitted"
        return (f"DPGMM(n_components={self.n_components}, "
                f"weight_concentration_prior={self.weight_concentration_prior}, {state}, "
                f"device={self.device})")
