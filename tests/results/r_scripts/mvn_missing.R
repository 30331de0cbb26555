# Reference results for the multivariate normal with missing values (emstats.mvn).
#
# Run from the repository root:
#     Rscript tests/results/r_scripts/mvn_missing.R
# Writes tests/results/mvn_missing.json.
#
# Contents (cases "nhanes" = mice::nhanes, all four numeric columns, 25 rows;
# "bfi" = psych::bfi[1:500, c("A1", ..., "A5")]):
#   data          the data, column by column (null = NA)
#   lavaan        the saturated model (every mean, variance and covariance free) by
#                 lavaan(..., missing = "ml", information = "observed"): maximum
#                 likelihood under MAR (full-information ML), standard errors from the
#                 observed information (the Hessian of the observed-data
#                 log-likelihood).  nlminb control rel.tol = 1e-14 so the estimates are
#                 converged to ~1e-10.  Parameters are named "mean(a)", "var(a)",
#                 "cov(a,b)" (a before b in column order) as emstats does.
#   lavaan$h1_loglik   lavaan's own EM estimate of the unrestricted model
#                 (fitMeasures "unrestricted.logl"), a second check of the maximum
#   little        Little's (1988) MCAR statistic computed here from lavaan's ML means
#                 and covariances: d2 = sum_j n_j (ybar_j - mu_j)' Sigma_j^-1 (ybar_j - mu_j)
#                 over the missingness patterns j (observed coordinates only),
#                 df = sum_j p_j - p, p-value = P(chi2_df > d2)
#   patterns      mice::md.pattern (rows: patterns with their counts; 1 = observed)
# and, for nhanes only,
#   mice_pool     mice(nhanes, m = 5, method = "norm", seed = 1): the five completed
#                 data sets and pool(with(imp, lm(chl ~ age + bmi))) (Rubin's rules,
#                 Barnard-Rubin degrees of freedom with dfcom = 22): an identity test of
#                 emstats.mi_fit on the same completed data
#   mice_mc       mice(nhanes, m = 400, method = "norm", seed = 2) pooled estimates and
#                 between-imputation variances of the same regression, for a comparison
#                 of emstats' own imputations within Monte Carlo error

source("tests/results/r_scripts/common.R")
suppressPackageStartupMessages({
  library(lavaan)
  library(mice)
  library(psych)
})

saturated <- function(v) {
  lines <- c(paste0(v, " ~ 1"), paste0(v, " ~~ ", v))
  for (i in seq_along(v)) for (j in seq_along(v)) if (j < i) lines <- c(lines, paste0(v[j], " ~~ ", v[i]))
  paste(lines, collapse = "\n")
}

emstats_name <- function(lhs, op, rhs, v) {
  if (op == "~1") return(paste0("mean(", lhs, ")"))
  if (lhs == rhs) return(paste0("var(", lhs, ")"))
  a <- match(lhs, v); b <- match(rhs, v)
  if (a > b) { t <- lhs; lhs <- rhs; rhs <- t }
  paste0("cov(", lhs, ",", rhs, ")")
}

fit_case <- function(df) {
  v <- names(df)
  fit <- lavaan(saturated(v), data = df, missing = "ml", information = "observed",
                meanstructure = TRUE, fixed.x = FALSE,
                control = list(rel.tol = 1e-14, iter.max = 10000, eval.max = 20000))
  pe <- parameterEstimates(fit)
  nm <- mapply(emstats_name, pe$lhs, pe$op, pe$rhs, MoreArgs = list(v = v))
  est <- pe$est; names(est) <- nm
  se <- pe$se; names(se) <- nm
  V <- vcov(fit)
  vn <- mapply(function(lab) {
    p <- pe[paste0(pe$lhs, pe$op, pe$rhs) == gsub("~~", "~~", lab, fixed = TRUE), ]
    if (nrow(p) == 0) p <- pe[paste0(pe$lhs, pe$op, pe$rhs) == lab, ]
    emstats_name(p$lhs[1], p$op[1], p$rhs[1], v)
  }, rownames(V))
  fm <- fitMeasures(fit, c("logl", "unrestricted.logl"))
  # ML moments in column order
  mu <- sapply(v, function(a) est[[paste0("mean(", a, ")")]])
  S <- matrix(0, length(v), length(v))
  for (i in seq_along(v)) for (j in seq_along(v)) {
    S[i, j] <- if (i == j) est[[paste0("var(", v[i], ")")]] else
      est[[paste0("cov(", v[min(i, j)], ",", v[max(i, j)], ")")]]
  }
  # Little's MCAR test from the ML estimates
  R <- !is.na(df)
  key <- apply(R, 1, function(r) paste(as.integer(r), collapse = ""))
  d2 <- 0; dfl <- 0
  for (k in unique(key)) {
    rows <- which(key == k); o <- R[rows[1], ]
    if (!any(o)) next
    yb <- colMeans(as.matrix(df[rows, o, drop = FALSE]))
    dd <- yb - mu[o]
    d2 <- d2 + length(rows) * drop(t(dd) %*% solve(S[o, o, drop = FALSE], dd))
    dfl <- dfl + sum(o)
  }
  dfl <- dfl - length(v)
  pat <- md.pattern(df, plot = FALSE)
  list(
    data = lapply(as.list(df), function(x) I(as.numeric(x))),
    columns = I(v),
    lavaan = list(
      call = "lavaan(saturated, data, missing = 'ml', information = 'observed', meanstructure = TRUE, fixed.x = FALSE, control = list(rel.tol = 1e-14))",
      converged = lavInspect(fit, "converged"),
      loglik = unname(fm["logl"]),
      h1_loglik = unname(fm["unrestricted.logl"]),
      coefficients = est,
      bse = se,
      vcov = list(rownames = I(unname(vn)), colnames = I(unname(vn)), values = unname(V)),
      mean = unname(mu),
      cov = S
    ),
    little = list(statistic = d2, df = as.integer(dfl),
                  pvalue = pchisq(d2, dfl, lower.tail = FALSE)),
    patterns = list(counts = I(as.integer(rownames(pat)[-nrow(pat)])),
                    observed = unname(pat[-nrow(pat), v, drop = FALSE]))
  )
}

nh <- mice::nhanes
bf <- psych::bfi[1:500, c("A1", "A2", "A3", "A4", "A5")]
cases <- list(nhanes = fit_case(nh), bfi = fit_case(bf))

pool_record <- function(imp) {
  fits <- with(imp, lm(chl ~ age + bmi))
  p <- pool(fits)
  pp <- p$pooled
  s <- summary(p)
  list(term = I(as.character(pp$term)), estimate = I(pp$estimate), ubar = I(pp$ubar),
       b = I(pp$b), t = I(pp$t), dfcom = pp$dfcom[1], df = I(pp$df), riv = I(pp$riv),
       lambda = I(pp$lambda), fmi = I(pp$fmi), std_error = I(s$std.error),
       p_value = I(s$p.value))
}
imp5 <- mice(nh, m = 5, method = "norm", seed = 1, printFlag = FALSE)
completed <- lapply(seq_len(5), function(i) {
  d <- complete(imp5, i)
  lapply(as.list(d), function(x) I(as.numeric(x)))
})
cases$nhanes$mice_pool <- c(list(call = "mice(nhanes, m = 5, method = 'norm', seed = 1); pool(with(imp, lm(chl ~ age + bmi)))",
                                 completed = completed), pool_record(imp5))
imp400 <- mice(nh, m = 400, method = "norm", seed = 2, printFlag = FALSE)
cases$nhanes$mice_mc <- c(list(call = "mice(nhanes, m = 400, method = 'norm', seed = 2); pool(with(imp, lm(chl ~ age + bmi)))",
                               m = 400L), pool_record(imp400))

out <- list(
  versions = list(R = R.version.string, lavaan = as.character(packageVersion("lavaan")),
                  mice = as.character(packageVersion("mice")),
                  psych = as.character(packageVersion("psych")), platform = R.version$platform),
  cases = cases
)
write_json_file(out, "tests/results/mvn_missing.json")
