# Reference results for Gaussian mixture models on the Old Faithful data.
#
# Run from the repository root:
#     Rscript tests/results/r_scripts/gmm_faithful.R
# Writes tests/results/gmm_faithful.json.
#
# Contents
#   hc_classes    the initial partitions Mclust uses for G = 1..5: model-based
#                 hierarchical agglomeration hc(faithful, "VVV", use = "SVD")
#                 (mclust's defaults), cut by hclass().  Starting EM from these
#                 partitions reaches the same fixed points as mclust.
#   bic           mclustBIC() for G = 1..5 and all 14 covariance structures, with
#                 a tight EM tolerance (emControl(tol = c(1e-11, 1e-11))) so that
#                 the log-likelihoods are converged to ~1e-10; mclust's sign
#                 convention: BIC = 2 loglik - npar log(n), larger is better.
#                 NA (null) where mclust found the fit singular.
#   loglik        the same table turned into log-likelihoods, (BIC + npar log n) / 2
#   npar          nMclustParams() for every cell
#   bic_default   mclustBIC() with mclust's default control (tol 1e-5), as Mclust(faithful)
#   vvv           Mclust(G = 2 and 3, "VVV", tight control): pro, mean, sigma, loglik
#   vvv_prior     the same with the default conjugate prior, priorControl() (MAP-EM)
#   prior_other   Mclust(G = 2, "EEE" / "VVI" / "VII", priorControl()), as vvv_prior
#   vve           Mclust(G = 2, "VVE", tight control): pro, mean, sigma, loglik
#   mixtools      normalmixEM on faithful$waiting from fixed starting values,
#                 k = 2 with unequal variances and with equal variances (arbvar = FALSE)

source("tests/results/r_scripts/common.R")
suppressPackageStartupMessages({
  library(mclust)
  library(mixtools)
})

X <- as.matrix(faithful)
n <- nrow(X)
models <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE",
            "EEV", "VEV", "EVV", "VVV")
G <- 1:5
ctl <- emControl(tol = c(1e-11, 1e-11))

hcp <- hc(X, modelName = "VVV", use = "SVD")
cls <- hclass(hcp, G)
hc_classes <- lapply(G, function(g) I(as.integer(cls[, g])))
names(hc_classes) <- as.character(G)

bic_tab <- function(control) {
  b <- mclustBIC(X, G = G, modelNames = models, initialization = list(hcPairs = hcp),
                 control = control)
  unclass(b)[, models, drop = FALSE]
}
b_tight <- bic_tab(ctl)
b_def <- bic_tab(emControl())
npar <- sapply(models, function(m) sapply(G, function(g) nMclustParams(m, 2, g)))
loglik <- (b_tight + npar * log(n)) / 2

cols <- function(M) {
  out <- lapply(models, function(m) I(unname(M[, m])))
  names(out) <- models
  out
}

fit_record <- function(fit) {
  p <- fit$parameters
  list(
    loglik = fit$loglik,
    bic = fit$bic,
    pro = I(unname(p$pro)),
    # mean: d x G, stored as a list of G vectors
    mean = lapply(seq_len(fit$G), function(k) I(unname(p$mean[, k]))),
    # sigma: d x d x G, stored as a list of G matrices
    sigma = lapply(seq_len(fit$G), function(k) unname(p$variance$sigma[, , k]))
  )
}

vvv <- list()
vvv_prior <- list()
for (g in 2:3) {
  f <- Mclust(X, G = g, modelNames = "VVV", initialization = list(hcPairs = hcp),
              control = ctl, verbose = FALSE)
  vvv[[as.character(g)]] <- fit_record(f)
  fp <- Mclust(X, G = g, modelNames = "VVV", initialization = list(hcPairs = hcp),
               control = ctl, prior = priorControl(), verbose = FALSE)
  rec <- fit_record(fp)
  rec$prior <- defaultPrior(X, G = g, modelName = "VVV")
  vvv_prior[[as.character(g)]] <- rec
}

# MAP with the default prior for the other structures emstats supports, G = 2
prior_other <- list()
for (m in c("EEE", "VVI", "VII")) {
  f <- Mclust(X, G = 2, modelNames = m, initialization = list(hcPairs = hcp),
              control = ctl, prior = priorControl(), verbose = FALSE)
  rec <- fit_record(f)
  rec$prior <- defaultPrior(X, G = 2, modelName = m)
  prior_other[[m]] <- rec
}

# VVE, G = 2: mclust's estimate (its EM fixed point is checked in the tests: one exact
# EM step from it still increases the log-likelihood)
vve <- fit_record(Mclust(X, G = 2, modelNames = "VVE", initialization = list(hcPairs = hcp),
                         control = ctl, verbose = FALSE))

# mixtools on the waiting times, from fixed start values
w <- faithful$waiting
start <- list(lambda = c(0.5, 0.5), mu = c(55, 80), sigma = c(6, 6))
mix <- list()
for (arbvar in c(TRUE, FALSE)) {
  sig <- if (arbvar) start$sigma else start$sigma[1]
  f <- normalmixEM(w, lambda = start$lambda, mu = start$mu, sigma = sig, k = 2,
                   arbvar = arbvar, epsilon = 1e-12, maxit = 100000)
  mix[[if (arbvar) "unequal" else "equal"]] <- list(
    call = sprintf("normalmixEM(faithful$waiting, lambda = c(0.5, 0.5), mu = c(55, 80), sigma = %s, k = 2, arbvar = %s, epsilon = 1e-12, maxit = 1e5)",
                   if (arbvar) "c(6, 6)" else "6", if (arbvar) "TRUE" else "FALSE"),
    lambda = I(f$lambda), mu = I(f$mu), sigma = I(f$sigma), loglik = f$loglik,
    n_iter = length(f$all.loglik) - 1L
  )
}

result <- list(
  description = paste(
    "mclust on faithful (272 x 2). BIC follows mclust's sign: 2 loglik - npar log(n)",
    "(larger is better). Tables are lists keyed by model name holding G = 1..5.",
    "hc_classes[[G]] is the initial partition (1-based labels) for G components.",
    "vvv / vvv_prior: mean is a list of G vectors, sigma a list of G d x d matrices",
    "(rows). mixtools: normalmixEM on faithful$waiting from lambda = (0.5, 0.5),",
    "mu = (55, 80), sigma = 6."
  ),
  script = "tests/results/r_scripts/gmm_faithful.R",
  versions = list(R = R.version.string, mclust = as.character(packageVersion("mclust")),
                  mixtools = as.character(packageVersion("mixtools")),
                  platform = R.version$platform),
  control = list(tol = I(ctl$tol)),
  n = n,
  G = I(G),
  models = I(models),
  hc_classes = hc_classes,
  bic = cols(b_tight),
  loglik = cols(loglik),
  npar = cols(npar),
  bic_default = cols(b_def),
  vvv = vvv,
  vvv_prior = vvv_prior,
  prior_other = prior_other,
  vve = vve,
  mixtools = mix
)

out_path <- "tests/results/gmm_faithful.json"
write_json_file(result, out_path)
cat("wrote", out_path, "\n")
print(b_tight)
print(loglik)
