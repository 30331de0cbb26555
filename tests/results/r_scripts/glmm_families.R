# Reference results for emstats.glmm's families and links (issue 18, item 1):
# lme4::glmer with one scalar random intercept, adaptive Gauss-Hermite quadrature
# (nAGQ = 25), on lme4's own data sets.
#
# Run from the repository root:
#     Rscript tests/results/r_scripts/glmm_families.R
# Writes tests/results/glmm_families.json and tests/results/grouseticks.csv.
#
# Cases (each: fixef, vcov, bse, sd and variance of the intercept, ranef, logLik,
# loglik_saturated, the deviance function at fixed points, and the Laplace fit)
#   cbpp_probit    cbind(incidence, size - incidence) ~ period + (1 | herd),
#                  binomial(link = "probit")
#   cbpp_poisson   incidence ~ period + offset(log(size)) + (1 | herd), poisson
#                  (the Poisson-with-offset form of cbpp used in lme4's own tests)
#   grouse_poisson TICKS ~ YEAR + cHEIGHT + (1 | BROOD), poisson, on ?grouseticks
#                  (the documented example has three crossed intercepts; nAGQ > 1
#                  needs a single one, so only BROOD is kept)
#
# loglik_saturated: for nAGQ > 1 lme4's logLik() is built from deviance residuals
# and equals the full marginal log-likelihood minus the saturated model's
# log-likelihood (sum of dbinom(y, n, y / n) or dpois(y, y)); for nAGQ = 1 it is
# the full Laplace log-likelihood.  Recorded so the tests can check both.

source("tests/results/r_scripts/common.R")
suppressPackageStartupMessages(library(lme4))

data(cbpp, package = "lme4")
data(grouseticks, package = "lme4")
gt <- grouseticks
gt$cHEIGHT <- gt$HEIGHT - mean(gt$HEIGHT)
write.csv(data.frame(INDEX = as.integer(as.character(gt$INDEX)), TICKS = gt$TICKS,
                     BROOD = as.integer(as.character(gt$BROOD)),
                     HEIGHT = gt$HEIGHT, YEAR = as.integer(as.character(gt$YEAR)),
                     LOCATION = as.integer(as.character(gt$LOCATION)),
                     cHEIGHT = gt$cHEIGHT),
          "tests/results/grouseticks.csv", row.names = FALSE, quote = FALSE)
gt$YEAR <- factor(gt$YEAR)

ctrl <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-13,
                     optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e5))

summ <- function(f, group, sat) {
  V <- as.matrix(vcov(f))
  vc <- as.data.frame(VarCorr(f))
  list(
    fixef = fixef(f),
    param_names = I(names(fixef(f))),
    vcov = unname(V),
    bse = sqrt(diag(V)),
    sd = vc$sdcor[1],
    var = vc$vcov[1],
    theta = unname(getME(f, "theta")),
    ranef = I(unname(ranef(f)[[group]][, 1])),
    loglik = as.numeric(logLik(f)),
    loglik_saturated = sat,
    optimizer_message = paste(f@optinfo$message, collapse = " ")
  )
}

one_case <- function(form, family, data, group, sat, pts) {
  fit <- glmer(form, family = family, data = data, nAGQ = 25, control = ctrl)
  lap <- glmer(form, family = family, data = data, nAGQ = 1, control = ctrl)
  devf <- update(fit, devFunOnly = TRUE)
  devl <- update(lap, devFunOnly = TRUE)
  est <- c(getME(fit, "theta"), fixef(fit))
  pts <- c(list(unname(est)), pts)
  list(
    call = paste(deparse(form), collapse = " "),
    family = family$family, link = family$link,
    nobs = nrow(data), n_groups = nlevels(data[[group]]),
    fit = summ(fit, group, sat),
    laplace_fit = summ(lap, group, sat),
    devfun_points = lapply(pts, function(p) list(theta = p[1], beta = I(p[-1]),
                                                 loglik = -0.5 * devf(p),
                                                 loglik_laplace = -0.5 * devl(p)))
  )
}

sat_binom <- sum(dbinom(cbpp$incidence, cbpp$size, cbpp$incidence / cbpp$size, log = TRUE))
sat_pois_cbpp <- sum(dpois(cbpp$incidence, cbpp$incidence, log = TRUE))
sat_pois_gt <- sum(dpois(gt$TICKS, gt$TICKS, log = TRUE))

result <- list(
  control = "glmerControl(optimizer = 'bobyqa', tolPwrss = 1e-13, optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e5)), nAGQ = 25 (laplace_fit: nAGQ = 1)",
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  Matrix = as.character(packageVersion("Matrix")),
                  platform = R.version$platform),
  cbpp_probit = one_case(cbind(incidence, size - incidence) ~ period + (1 | herd),
                         binomial(link = "probit"), cbpp, "herd", sat_binom,
                         list(c(0.5, -0.8, -0.5, -0.6, -0.9), c(1.5, -1.2, -0.2, -0.4, -0.5))),
  cbpp_poisson = one_case(incidence ~ period + offset(log(size)) + (1 | herd),
                          poisson(), cbpp, "herd", sat_pois_cbpp,
                          list(c(0.5, -2.0, -1.0, -1.1, -1.6), c(1.2, -1.5, -0.5, -0.5, -1.0))),
  grouse_poisson = one_case(TICKS ~ YEAR + cHEIGHT + (1 | BROOD), poisson(), gt, "BROOD",
                            sat_pois_gt,
                            list(c(1.0, 0.5, 1.0, -1.0, -0.02), c(2.0, 0.0, 1.5, -0.5, -0.03)))
)
write_json_file(result, "tests/results/glmm_families.json")
