# Log-likelihoods of intercept-only models, the witnesses of LL-Null, the likelihood-ratio
# test against it and McFadden's pseudo R-squared in emstats' summaries.  Run from the
# repository root:
#   Rscript tests/results/r_scripts/null_models.R
# Writes tests/results/null_models.json.
#   tobit     AER::tobit(affairs ~ 1, data = Affairs) and the full model of
#             tobit_affairs.R (left-censored at 0)
#   zeroinfl  pscl::zeroinfl(art ~ 1 | 1, bioChemists) and
#             zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, bioChemists)
#   hurdle    pscl::hurdle, the same two formulas
#   glmm      lme4::glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd), cbpp,
#             binomial, nAGQ = 25) and with ~ period; logLik() for nAGQ > 1 leaves out the
#             saturated-model constant, so it is recorded (loglik_saturated) as in
#             glmm_cbpp.R
source("tests/results/r_scripts/common.R")  # to_json, write_json_file; loads AER
suppressPackageStartupMessages({
  library(pscl)
  library(lme4)
})
ll <- function(f) as.numeric(logLik(f))
data("Affairs", package = "AER")
t0 <- tobit(affairs ~ 1, data = Affairs, control = fit_control())
t1 <- tobit(affairs ~ age + yearsmarried + religiousness + occupation + rating, data = Affairs,
            control = fit_control())
data("bioChemists", package = "pscl")
zc <- zeroinfl.control(reltol = 1e-14, maxit = 50000)
z0 <- zeroinfl(art ~ 1 | 1, data = bioChemists, control = zc)
z1 <- zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, data = bioChemists, control = zc)
hc <- hurdle.control(reltol = 1e-14, maxit = 50000)
h0 <- hurdle(art ~ 1 | 1, data = bioChemists, control = hc)
h1 <- hurdle(art ~ fem + mar + kid5 + phd + ment | ment, data = bioChemists, control = hc)
data("cbpp", package = "lme4")
gc <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 0.2, rhoend = 1e-10))
g0 <- glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd), data = cbpp,
            family = binomial, nAGQ = 25, control = gc)
g1 <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp,
            family = binomial, nAGQ = 25, control = gc)
sat <- sum(dbinom(cbpp$incidence, cbpp$size, cbpp$incidence / cbpp$size, log = TRUE))
out <- list(
  versions = list(R = R.version.string, AER = as.character(packageVersion("AER")),
                  pscl = as.character(packageVersion("pscl")),
                  lme4 = as.character(packageVersion("lme4"))),
  tobit = list(llnull = ll(t0), llf = ll(t1)),
  zeroinfl = list(llnull = ll(z0), llf = ll(z1)),
  hurdle = list(llnull = ll(h0), llf = ll(h1)),
  glmm = list(llnull = ll(g0), llf = ll(g1), loglik_saturated = sat)
)
write_json_file(out, "tests/results/null_models.json")
