# Reference results for the rotations of emstats.factor_analysis and for the standard
# errors of rotated loadings.
#
# Run from the repository root:
#     Rscript tests/results/r_scripts/factor_rotation.R
# Writes tests/results/factor_rotation.json.
#
# Data: lavaan::HolzingerSwineford1939[, paste0("x", 1:9)] (301 complete rows, as in
# factor_analysis.R, whose JSON holds the data) and psych::bfi[, 1:25] complete cases
# (2436 rows).
# Cases:
#   gparotation  the unrotated ML loadings A of stats::factanal (HS: 3 factors; bfi: 5),
#                stored, and their rotations by GPArotation (eps = 1e-7, maxit = 1e5,
#                Kaiser normalisation off, GPArotation's default): oblimin(gam = 0),
#                quartimin, and the same oblimin with normalize = TRUE; loadings and
#                the factor correlations Phi.  psych::fa(x, nfactors, fm = "ml",
#                rotate = "oblimin") loadings and Phi (psych's own ML fit, its default
#                tolerances).  stats::promax(A, m = 4) after a tight varimax
#                (eps = 1e-10), loadings and rotmat (promax is not in GPArotation).
#   lavaan_se    lavaan::efa(HS, nfactors = 3, rotation = r, rotation.se = "delta",
#                information = "observed", output = "lavaan") for r = "varimax" and
#                "oblimin" (gamma 0): the rotated loadings (unstandardized) with their
#                standard errors, the factor correlations with theirs, and the same
#                for the standardized solution (standardizedSolution, type "std.all").
#                Tolerances: control rel.tol = 1e-12; lavaan's default rotation.args
#                (gpa.tol = 1e-5, 30 random starts).
#
# GPArotation's criterion (the norm of the projected gradient) stalls between 1e-8 and
# 1e-9 on these loadings (oblimin on HS ran 1e4 iterations at eps = 1e-10 without
# converging; bfi did not reach 1e-8 in minutes), while at 1e-7 it converges in about
# a hundred iterations with loadings within ~1e-7 of the 1e-8 solution on HS.  A
# tighter gpa.tol in lavaan's efa with rotation.se = "delta" (which re-rotates for its
# numerical derivatives) ran for more than an hour.

source("tests/results/r_scripts/common.R")
suppressPackageStartupMessages({
  library(lavaan)
  library(psych)
  library(GPArotation)
})

hs <- HolzingerSwineford1939[, paste0("x", 1:9)]
bfi25 <- na.omit(bfi[, 1:25])

gpa_record <- function(x, k) {
  f <- factanal(x, factors = k, rotation = "none", control = list(opt = list(maxit = 1000)))
  A <- unclass(f$loadings)
  dimnames(A) <- NULL
  ob <- oblimin(A, gam = 0, normalize = FALSE, eps = 1e-7, maxit = 1e5)
  qm <- quartimin(A, normalize = FALSE, eps = 1e-7, maxit = 1e5)
  obn <- oblimin(A, gam = 0, normalize = TRUE, eps = 1e-7, maxit = 1e5)
  vm <- varimax(A, normalize = TRUE, eps = 1e-10)
  pm <- promax(unclass(vm$loadings), m = 4)
  pf <- psych::fa(x, nfactors = k, fm = "ml", rotate = "oblimin")
  list(factors = k, n = nrow(x), unrotated = A,
       oblimin = list(loadings = unname(unclass(ob$loadings)), phi = unname(ob$Phi),
                      converged = ob$convergence),
       quartimin = list(loadings = unname(unclass(qm$loadings)), phi = unname(qm$Phi),
                        converged = qm$convergence),
       oblimin_kaiser = list(loadings = unname(unclass(obn$loadings)), phi = unname(obn$Phi),
                             converged = obn$convergence),
       promax = list(loadings = unname(unclass(pm$loadings)),
                     rotmat = unname(vm$rotmat %*% pm$rotmat)),
       psych_oblimin = list(loadings = unname(unclass(pf$loadings)), phi = unname(pf$Phi),
                            uniquenesses = I(unname(pf$uniquenesses))))
}

lav_se_record <- function(x, k, rotation) {
  fit <- efa(data = x, nfactors = k, rotation = rotation, rotation.se = "delta",
             information = "observed", output = "lavaan",
             control = list(rel.tol = 1e-12, iter.max = 20000, eval.max = 40000))
  pe <- parameterEstimates(fit)
  st <- standardizedSolution(fit, type = "std.all")
  lam <- pe[pe$op == "=~", ]
  lst <- st[st$op == "=~", ]
  fnames <- unique(lam$lhs)
  vnames <- colnames(x)
  mat <- function(tab, col) {
    M <- matrix(NA_real_, length(vnames), length(fnames))
    for (r in seq_len(nrow(tab))) {
      M[match(tab$rhs[r], vnames), match(tab$lhs[r], fnames)] <- tab[[col]][r]
    }
    M
  }
  cor_rows <- pe[pe$op == "~~" & pe$lhs %in% fnames & pe$rhs %in% fnames &
                 pe$lhs != pe$rhs, ]
  list(factors = k, rotation = rotation, logl = unname(fitMeasures(fit, "logl")),
       loadings = mat(lam, "est"), loadings_se = mat(lam, "se"),
       std_loadings = mat(lst, "est.std"), std_loadings_se = mat(lst, "se"),
       phi_pairs = lapply(seq_len(nrow(cor_rows)), function(r)
         list(i = match(cor_rows$lhs[r], fnames), j = match(cor_rows$rhs[r], fnames),
              est = cor_rows$est[r], se = cor_rows$se[r])),
       uniquenesses = I(unname(diag(lavInspect(fit, "est")$theta))))
}

out <- list(
  versions = list(R = R.version.string, lavaan = as.character(packageVersion("lavaan")),
                  psych = as.character(packageVersion("psych")),
                  GPArotation = as.character(packageVersion("GPArotation")),
                  platform = R.version$platform),
  gparotation = list(hs = gpa_record(hs, 3), bfi = gpa_record(bfi25, 5)),
  lavaan_se = list(varimax = lav_se_record(hs, 3, "varimax"),
                   oblimin = lav_se_record(hs, 3, "oblimin"))
)
write_json_file(out, "tests/results/factor_rotation.json")
