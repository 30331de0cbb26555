# Reference results for the random-intercept logistic regression (issue 5) on
# lme4's cbpp data (contagious bovine pleuropneumonia; Lesnoff et al. 2004).
#
# Run from the repository root:
#     Rscript tests/results/r_scripts/glmm_cbpp.R
# Writes tests/results/glmm_cbpp.json and emstats/datasets/data/cbpp.csv.
#
# Contents
#   fixef, vcov     glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
#                   family = binomial, nAGQ = 25) with tightened optimiser
#                   tolerances (the recorded "control"); vcov() is lme4's, from
#                   its finite-difference Hessian of the same deviance
#   herd_sd, herd_var  the random-intercept standard deviation and variance
#   ranef           conditional modes of the herd intercepts (herds 1..15)
#   loglik          logLik() at the estimates (adaptive Gauss-Hermite, 25 nodes)
#   deviance_terms  the same criterion evaluated by lme4 at fixed points
#                   (devfun(theta, beta) -> -2 loglik), for a direct check of
#                   the quadrature at points other than the optimum
#   default_fit     the same model with glmer's default control, for comparison
#   laplace_fit     the same model with nAGQ = 1 (Laplace), tight control and a
#                   tight PIRLS tolerance (tolPwrss = 1e-13; the Laplace value depends
#                   on how exactly the conditional modes are found, at the 3e-6
#                   relative level with the default 1e-7), and its deviance function
#                   at devfun_points[[1]] (laplace_devfun_point)
#   loglik_saturated  sum(dbinom(incidence, size, incidence / size, log = TRUE)):
#                   for nAGQ > 1, lme4's logLik() is the marginal log-likelihood
#                   minus this saturated-model constant (its AGQ deviance is built
#                   from deviance residuals), whereas for nAGQ = 1 it is the full
#                   marginal log-likelihood; recorded so the tests can check both

source("tests/results/r_scripts/common.R")
suppressPackageStartupMessages(library(lme4))

data(cbpp, package = "lme4")
out_csv <- data.frame(
  herd = as.integer(as.character(cbpp$herd)),
  incidence = cbpp$incidence,
  size = cbpp$size,
  period = as.integer(as.character(cbpp$period))
)
write.csv(out_csv, "emstats/datasets/data/cbpp.csv", row.names = FALSE, quote = FALSE)

form <- cbind(incidence, size - incidence) ~ period + (1 | herd)
ctrl <- glmerControl(optimizer = "bobyqa",
                     optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e5))
fit <- glmer(form, family = binomial, data = cbpp, nAGQ = 25, control = ctrl)
fit_default <- glmer(form, family = binomial, data = cbpp, nAGQ = 25)
ctrl_laplace <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-13,
                             optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e5))
fit_laplace <- glmer(form, family = binomial, data = cbpp, nAGQ = 1, control = ctrl_laplace)

summ <- function(f) {
  V <- as.matrix(vcov(f))
  vc <- as.data.frame(VarCorr(f))
  list(
    fixef = fixef(f),
    param_names = I(names(fixef(f))),
    vcov = unname(V),
    bse = sqrt(diag(V)),
    herd_sd = vc$sdcor[1],
    herd_var = vc$vcov[1],
    theta = unname(getME(f, "theta")),
    ranef = I(unname(ranef(f)$herd[, 1])),
    loglik = as.numeric(logLik(f)),
    deviance = deviance(f),
    optimizer_message = paste(f@optinfo$message, collapse = " ")
  )
}
res <- summ(fit)

# The deviance function of the nAGQ = 25 fit at a few fixed (theta, beta).
devf <- update(fit, devFunOnly = TRUE)
pts <- list(
  c(1.0, -1.5, -1.0, -1.1, -1.6),
  c(0.3, -1.0, -0.5, -0.5, -1.0),
  c(2.0, -2.0, -1.5, -1.0, -2.5)
)
dev_at <- lapply(pts, function(p) list(theta = p[1], beta = I(p[-1]),
                                       loglik = -0.5 * devf(p)))

result <- list(
  call = "glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial, data = cbpp, nAGQ = 25)",
  control = "glmerControl(optimizer = 'bobyqa', optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e5))",
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  Matrix = as.character(packageVersion("Matrix")),
                  platform = R.version$platform),
  nobs = nrow(cbpp),
  n_groups = nlevels(cbpp$herd),
  fit = res,
  default_fit = summ(fit_default),
  laplace_fit = summ(fit_laplace),
  laplace_devfun_point = list(theta = pts[[1]][1], beta = I(pts[[1]][-1]),
                              loglik = -0.5 * update(fit_laplace, devFunOnly = TRUE)(pts[[1]])),
  loglik_saturated = sum(dbinom(cbpp$incidence, cbpp$size, cbpp$incidence / cbpp$size,
                                log = TRUE)),
  devfun_points = dev_at
)
write_json_file(result, "tests/results/glmm_cbpp.json")
