# Reference results for maximum-likelihood factor analysis (emstats.factor_analysis).
#
# Run from the repository root:
#     Rscript tests/results/r_scripts/factor_analysis.R
# Writes tests/results/factor_analysis.json.
#
# Data (written into the fixture, column by column, null = NA):
#   hs        lavaan::HolzingerSwineford1939[, paste0("x", 1:9)], 301 complete rows
#   hs_mar    the same with values deleted at random given observed ones (MAR):
#             set.seed(13); x7..x9 deleted with probability plogis(-2 + 0.8 (x1 - mean x1)),
#             x4 with probability 0.1 (MCAR); the rule is below
#   bfi       psych::bfi[, 1:25] (the 25 personality items, 2800 rows with NA)
# Cases:
#   factanal  stats::factanal(x, factors = k, rotation = r) on complete data (hs; bfi
#             complete cases, 2436 rows): the Bartlett-corrected chi-square STATISTIC,
#             dof, p-value, uniquenesses, loadings (rotation "none", "varimax" with
#             Kaiser normalisation, "promax" m = 4) and promax's rotation matrix.
#             factanal's control: lower = 0.005 (default), opt maxit 1000.
#   lavaan    lavaan::efa(..., rotation = "varimax", missing = "ml" where data are
#             missing, output = "lavaan"): fitMeasures logl, unrestricted.logl (the
#             saturated model), chisq (= 2 (unrestricted.logl - logl), no correction),
#             df, rmsea, aic, bic, npar; and standardized = FALSE loadings.
#             Convergence: control rel.tol = 1e-10.

source("tests/results/r_scripts/common.R")
suppressPackageStartupMessages({
  library(lavaan)
  library(psych)
})

hs <- HolzingerSwineford1939[, paste0("x", 1:9)]
set.seed(13)
hs_mar <- hs
p7 <- plogis(-2 + 0.8 * (hs$x1 - mean(hs$x1)))
drop7 <- runif(nrow(hs)) < p7
hs_mar[drop7, c("x7", "x8", "x9")] <- NA
hs_mar$x9[!drop7 & runif(nrow(hs)) < 0.08] <- NA
hs_mar$x4[runif(nrow(hs)) < 0.1] <- NA
bfi25 <- bfi[, 1:25]

cols <- function(df) lapply(as.list(df), function(x) I(as.numeric(x)))

fa_record <- function(x, k) {
  rec <- list(n = nrow(x), factors = k)
  for (r in c("none", "varimax", "promax")) {
    f <- factanal(x, factors = k, rotation = r, control = list(opt = list(maxit = 1000)))
    rec$statistic <- unname(f$STATISTIC)
    rec$dof <- unname(f$dof)
    rec$pvalue <- unname(f$PVAL)
    rec$objective <- unname(f$criteria["objective"])
    rec$uniquenesses <- I(unname(f$uniquenesses))
    rec[[paste0("loadings_", r)]] <- unclass(f$loadings)[, , drop = FALSE]
    if (r == "promax") rec$promax_rotmat <- f$rotmat
    if (r == "none") {
      # the rotations of the unrotated loadings converged tightly (varimax's default
      # eps = 1e-5 stops short by ~1e-3 in the loadings): varimax(normalize = TRUE) and
      # stats::promax's steps (m = 4) after that varimax
      A <- unclass(f$loadings)
      if (k > 1) {
        vm <- varimax(A, normalize = TRUE, eps = 1e-14)
        V <- unclass(vm$loadings)
        U <- lm.fit(V, V * abs(V)^3)$coefficients
        U <- U %*% diag(sqrt(diag(solve(t(U) %*% U))))
        rec$loadings_varimax_tight <- unname(V)
        rec$loadings_promax_tight <- unname(V %*% U)
        rec$promax_tight_rotmat <- unname(vm$rotmat %*% U)
      }
    }
  }
  dimnames(rec$loadings_none) <- NULL
  dimnames(rec$loadings_varimax) <- NULL
  dimnames(rec$loadings_promax) <- NULL
  rec
}

lav_record <- function(x, k, missing) {
  fit <- efa(data = x, nfactors = k, rotation = "varimax", missing = missing,
             output = "lavaan", control = list(rel.tol = 1e-10, iter.max = 20000,
                                              eval.max = 40000))
  fm <- fitMeasures(fit, c("logl", "unrestricted.logl", "chisq", "df", "rmsea", "aic",
                           "bic", "npar", "ntotal"))
  est <- lavInspect(fit, "est")
  list(nfactors = k, missing = missing, logl = unname(fm["logl"]),
       unrestricted_logl = unname(fm["unrestricted.logl"]), chisq = unname(fm["chisq"]),
       df = unname(fm["df"]), rmsea = unname(fm["rmsea"]), aic = unname(fm["aic"]),
       bic = unname(fm["bic"]), npar = unname(fm["npar"]), ntotal = unname(fm["ntotal"]),
       loadings = unname(unclass(est$lambda)), uniquenesses = I(unname(diag(est$theta))),
       converged = lavInspect(fit, "converged"))
}

cases <- list(
  hs = list(data = cols(hs),
            factanal = lapply(1:3, function(k) fa_record(hs, k)),
            lavaan = lapply(1:3, function(k) lav_record(hs, k, "listwise"))),
  hs_mar = list(data = cols(hs_mar),
                lavaan = lapply(1:3, function(k) lav_record(hs_mar, k, "ml"))),
  bfi = list(data = cols(bfi25),
             factanal = list(fa_record(na.omit(bfi25), 5)),
             lavaan = list(lav_record(bfi25, 5, "ml")))
)

out <- list(
  versions = list(R = R.version.string, lavaan = as.character(packageVersion("lavaan")),
                  psych = as.character(packageVersion("psych")), platform = R.version$platform),
  cases = cases
)
write_json_file(out, "tests/results/factor_analysis.json")
