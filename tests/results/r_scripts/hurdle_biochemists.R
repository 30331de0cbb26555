# Hurdle count regressions (binomial zero hurdle) and Vuong's test: pscl::hurdle and
# pscl::vuong on the bioChemists example.  Writes tests/results/hurdle_biochemists.json
# (the data are in zeroinfl_biochemists.json).  Run from the repository root:
#   Rscript tests/results/r_scripts/hurdle_biochemists.R
source("tests/results/r_scripts/common.R")  # to_json, write_json_file
suppressPackageStartupMessages({library(pscl); library(MASS)})
data("bioChemists", package = "pscl")
hctl <- hurdle.control(reltol = 1e-14, maxit = 50000)
zctl <- zeroinfl.control(reltol = 1e-14, maxit = 50000)
h_case <- function(fit, call_string) {
  out <- list(call = call_string, coefficients = coef(fit), bse = sqrt(diag(vcov(fit))),
              loglik = as.numeric(logLik(fit)), df = as.integer(attr(logLik(fit), "df")))
  if (fit$dist$count == "negbin") {
    out$theta <- unname(fit$theta["count"])
    out$se_log_theta <- unname(fit$SE.logtheta["count"])
  }
  out
}
vuong_stat <- function(m1, m2) {
  # pscl::vuong's raw statistic, recomputed from its definition
  p1 <- predprob(m1); p2 <- predprob(m2); y <- m1$y
  if (is.null(y)) y <- model.response(model.frame(m1))
  l1 <- log(p1[cbind(seq_along(y), y + 1)]); l2 <- log(p2[cbind(seq_along(y), y + 1)])
  m <- l1 - l2
  list(raw = sqrt(length(m)) * mean(m) / sd(m), pvalue_raw = pnorm(-abs(sqrt(length(m)) * mean(m) / sd(m))))
}
cases <- list()
f <- hurdle(art ~ . | 1, data = bioChemists, control = hctl)
cases$poisson_const <- h_case(f, "hurdle(art ~ . | 1, data = bioChemists)")
f <- hurdle(art ~ fem + mar + kid5 + phd + ment | ment, data = bioChemists, dist = "negbin", control = hctl)
cases$negbin_ment <- h_case(f, "hurdle(art ~ fem + mar + kid5 + phd + ment | ment, data = bioChemists, dist = 'negbin')")
f <- hurdle(art ~ fem + mar + kid5 + phd + ment, data = bioChemists, control = hctl)
cases$poisson_same <- h_case(f, "hurdle(art ~ fem + mar + kid5 + phd + ment, data = bioChemists)")
zp <- zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, data = bioChemists, control = zctl)
gp <- glm(art ~ fem + mar + kid5 + phd + ment, data = bioChemists, family = poisson)
zn <- zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, data = bioChemists, dist = "negbin", control = zctl)
gn <- glm.nb(art ~ fem + mar + kid5 + phd + ment, data = bioChemists, control = glm.control(epsilon = 1e-14, maxit = 200))
v <- capture.output(vuong(zp, gp))
vuong_cases <- list(
  zip_vs_poisson = c(vuong_stat(zp, gp), list(printed = I(v))),
  zinb_vs_nb = c(vuong_stat(zn, gn), list(printed = I(capture.output(vuong(zn, gn))))))
write_json_file(list(versions = list(R = R.version.string, pscl = as.character(packageVersion("pscl"))),
                     cases = cases, vuong = vuong_cases), "tests/results/hurdle_biochemists.json")
