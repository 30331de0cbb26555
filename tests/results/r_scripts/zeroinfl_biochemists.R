# Zero-inflated count regressions: pscl::zeroinfl on its documented example
# (?zeroinfl, bioChemists).  Writes tests/results/zeroinfl_biochemists.json with the
# data, so the Python tests need neither R nor pscl.  Run from the repository root:
#   Rscript tests/results/r_scripts/zeroinfl_biochemists.R
# Each case: coefficients (count_*, zero_*), standard errors (from pscl's optim
# Hessian, refitted with reltol 1e-14), log-likelihood, theta and SE(log theta).
source("tests/results/r_scripts/common.R")  # to_json, write_json_file
suppressPackageStartupMessages(library(pscl))
data("bioChemists", package = "pscl")
ctl <- zeroinfl.control(reltol = 1e-14, maxit = 50000)
zi_case <- function(fit, call_string) {
  se <- sqrt(diag(vcov(fit)))
  out <- list(call = call_string,
              coefficients = coef(fit), bse = se,
              loglik = as.numeric(logLik(fit)),
              df = as.integer(attr(logLik(fit), "df")),
              converged = fit$converged)
  if (fit$dist == "negbin") {
    out$theta <- fit$theta
    out$se_log_theta <- fit$SE.logtheta
  }
  out
}
cases <- list()
f <- zeroinfl(art ~ . | 1, data = bioChemists, control = ctl)
cases$poisson_const <- zi_case(f, "zeroinfl(art ~ . | 1, data = bioChemists)")
f <- zeroinfl(art ~ . | 1, data = bioChemists, dist = "negbin", control = ctl)
cases$negbin_const <- zi_case(f, "zeroinfl(art ~ . | 1, data = bioChemists, dist = 'negbin')")
f <- zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, data = bioChemists, control = ctl)
cases$poisson_ment <- zi_case(f, "zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, data = bioChemists)")
f <- zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, data = bioChemists, dist = "negbin", control = ctl)
cases$negbin_ment <- zi_case(f, "zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, data = bioChemists, dist = 'negbin')")
f <- zeroinfl(art ~ fem + mar + kid5 + phd + ment, data = bioChemists, control = ctl)
cases$poisson_same <- zi_case(f, "zeroinfl(art ~ fem + mar + kid5 + phd + ment, data = bioChemists)")
d <- bioChemists
out <- list(versions = list(R = R.version.string, pscl = as.character(packageVersion("pscl"))),
            data = list(art = I(d$art), fem = I(as.character(d$fem)), mar = I(as.character(d$mar)),
                        kid5 = I(d$kid5), phd = I(d$phd), ment = I(d$ment)),
            cases = cases)
write_json_file(out, "tests/results/zeroinfl_biochemists.json")
