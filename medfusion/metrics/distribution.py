"""Distribution distances between two sets of feature vectors: FID and KID (numpy/scipy, float64 throughout).

The inputs are feature vectors, one row per image (or slice, or volume), e.g. the 2048-d pool features of a
pretrained network (see :mod:`medfusion.metrics.features`). Nothing here knows which network produced them:
a number is only comparable with another computed from the same network, weights, preprocessing and sample
sizes.

* **FID** (Fréchet Inception Distance; Heusel et al., NeurIPS 2017, arXiv:1706.08500): the Fréchet
  (2-Wasserstein) distance between Gaussians fitted to the two feature sets,
  ``‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½)``, with the sample mean and the unbiased sample covariance.
  Biased upwards for small N; compare FIDs only at equal sample sizes.
* **KID** (Kernel Inception Distance; Bińkowski et al., ICLR 2018, arXiv:1801.01401): the unbiased estimate
  of the squared maximum mean discrepancy (MMD²) with the polynomial kernel ``k(x, y) = (γ x·y + c)^d``
  (γ = 1/F, c = 1, d = 3 by default), averaged over random subsets. Unbiased, so it can be slightly
  negative when the two distributions are equal.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["feature_statistics", "frechet_distance", "fid", "kid"]


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set.

    Args:
        features: (N, F) array-like, one feature vector per row; N ≥ 2.

    Returns:
        ``(mu, sigma)``: the (F,) sample mean and the (F, F) unbiased sample covariance (divisor N − 1,
        variables in columns), both float64.
    """
    x = _features(features, "features")
    if x.shape[0] < 2:
        raise InputError(f"need at least 2 feature vectors to estimate a covariance, got {x.shape[0]}")
    mu = x.mean(axis=0)
    sigma = np.atleast_2d(np.cov(x, rowvar=False))
    return mu, sigma


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂): ``‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½)``.

    ``Tr((Σ₁Σ₂)^½)`` is computed as the sum of the square roots of the eigenvalues of the symmetric positive
    semi-definite matrix ``√Σ₁ Σ₂ √Σ₁`` (which has the same eigenvalues as Σ₁Σ₂), in float64; eigenvalues that
    round-off makes slightly negative are clipped to 0. This avoids the complex results and the ad-hoc
    diagonal offsets of a general matrix square root of the non-symmetric product Σ₁Σ₂, and handles
    singular covariances (fewer samples than features). The result is clipped at ≥ 0.

    Args:
        mu1, mu2: (F,) means.
        sigma1, sigma2: (F, F) covariances (symmetric positive semi-definite).

    Returns:
        the distance (squared feature units), a Python float.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    f = mu1.shape[0]
    if mu1.ndim != 1 or mu2.shape != (f,):
        raise InputError(f"means must be two vectors of the same length, got shapes {mu1.shape} and {mu2.shape}")
    if sigma1.shape != (f, f) or sigma2.shape != (f, f):
        raise InputError(
            f"covariances must be {f}×{f} to match the means, got shapes {sigma1.shape} and {sigma2.shape}"
        )
    for name, a in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.all(np.isfinite(a)):
            raise InputError(f"{name} contains non-finite values (NaN or inf)")

    # Symmetrise: covariances are symmetric in exact arithmetic; eigh uses one triangle anyway.
    s1 = 0.5 * (sigma1 + sigma1.T)
    s2 = 0.5 * (sigma2 + sigma2.T)
    root1 = _psd_sqrt(s1)
    m = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh(0.5 * (m + m.T))
    tr_covmean = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))

    diff = mu1 - mu2
    value = float(diff @ diff) + float(np.trace(s1)) + float(np.trace(s2)) - 2.0 * tr_covmean
    return max(value, 0.0)


def fid(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID when the features are Inception
    pool features; here any network's).

    Args:
        features_a, features_b: (N_a, F) and (N_b, F) arrays, N ≥ 2 each, same F.

    Returns:
        the FID (float ≥ 0). Symmetric in its arguments.

    Computation: with few samples (``N_a·N_b ≤ F²``) the covariances are never formed: with centred data
    X̃ and n = N − 1, the non-zero eigenvalues of Σ_aΣ_b are the squared singular values of
    ``X̃_a X̃_bᵀ / √(n_a n_b)``, so ``Tr((Σ_aΣ_b)^½)`` is that matrix's nuclear norm (exact, and cheaper than
    F×F eigendecompositions). Otherwise :func:`feature_statistics` and :func:`frechet_distance`.
    """
    a = _features(features_a, "features_a")
    b = _features(features_b, "features_b")
    _same_width(a, b)
    if a.shape[0] * b.shape[0] <= a.shape[1] ** 2:
        return _fid_few_samples(a, b)
    mu_a, sigma_a = feature_statistics(a)
    mu_b, sigma_b = feature_statistics(b)
    return frechet_distance(mu_a, sigma_a, mu_b, sigma_b)


def kid(
    features_a,
    features_b,
    *,
    subset_size: int = 1000,
    subsets: int = 100,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD² with a polynomial kernel, averaged over random subsets.

    For each of ``subsets`` rounds, ``m = min(subset_size, N_a, N_b)`` rows are drawn without replacement from
    each set (``numpy.random.default_rng(seed)``), and the unbiased estimator

        MMD²ᵤ = [Σ_{i≠j} k(xᵢ, xⱼ) + Σ_{i≠j} k(yᵢ, yⱼ)] / (m(m − 1)) − 2 Σ_{i,j} k(xᵢ, yⱼ) / m²

    is evaluated with ``k(x, y) = (γ x·y + coef0)^degree`` (γ = 1/F by default). With ``m`` equal to both set
    sizes every round uses all rows, and the result does not depend on the seed. This follows Bińkowski et
    al. (2018) and the defaults of their code and of torch-fidelity/clean-fid (d = 3, γ = 1/F, c = 1, subsets
    of 1000, 100 rounds).

    Args:
        features_a, features_b: (N_a, F) and (N_b, F) arrays, N ≥ 2 each, same F.
        subset_size: rows per subset (capped at ``min(N_a, N_b)``).
        subsets: number of random subsets.
        degree, gamma, coef0: kernel parameters.
        seed: seed of the subset sampling.

    Returns:
        ``(mean, std)`` of MMD² over the subsets (population standard deviation; 0 for one subset), floats in
        squared-kernel units. The mean may be slightly negative when the distributions match.
    """
    a = _features(features_a, "features_a")
    b = _features(features_b, "features_b")
    _same_width(a, b)
    m = min(int(subset_size), a.shape[0], b.shape[0])
    if m < 2:
        raise InputError(
            f"KID needs subsets of at least 2 feature vectors, got subset_size={subset_size} with "
            f"{a.shape[0]} and {b.shape[0]} vectors"
        )
    if int(subsets) < 1:
        raise InputError(f"subsets must be ≥ 1, got {subsets}")
    if int(degree) < 1:
        raise InputError(f"degree must be ≥ 1, got {degree}")
    g = 1.0 / a.shape[1] if gamma is None else float(gamma)

    rng = np.random.default_rng(seed)
    values = np.empty(int(subsets), dtype=np.float64)
    for s in range(int(subsets)):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        values[s] = _mmd2_unbiased(x, y, int(degree), g, float(coef0))
    return float(values.mean()), float(values.std())


# --------------------------------------------------------------------------------------------------------------


def _fid_few_samples(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca, cb = a - mu_a, b - mu_b
    na, nb = a.shape[0] - 1, b.shape[0] - 1
    tr_covmean = float(np.linalg.svd(ca @ cb.T, compute_uv=False).sum()) / np.sqrt(na * nb)
    diff = mu_a - mu_b
    value = float(diff @ diff) + float(np.sum(ca * ca)) / na + float(np.sum(cb * cb)) / nb - 2.0 * tr_covmean
    return max(value, 0.0)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    m = x.shape[0]
    k_xx = (gamma * (x @ x.T) + coef0) ** degree
    k_yy = (gamma * (y @ y.T) + coef0) ** degree
    k_xy = (gamma * (x @ y.T) + coef0) ** degree
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative round-off eigenvalues clipped to 0)."""
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _features(features, name: str) -> np.ndarray:
    try:
        x = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name} is not a numeric array: {e}") from e
    if x.ndim != 2:
        raise InputError(f"{name} must be a 2D array (N samples, F features), got shape {x.shape}")
    if x.shape[1] < 1:
        raise InputError(f"{name} has no feature columns (shape {x.shape})")
    if x.shape[0] < 2:
        raise InputError(f"{name} needs at least 2 feature vectors, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name} contains non-finite values (NaN or inf)")
    return x


def _same_width(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise InputError(f"feature widths differ: {a.shape[1]} vs {b.shape[1]}")
