# Reference results for Tobit (censored normal) regression on Fair's Affairs data.
#
# Run from the repository root:
#     Rscript tests/results/r_scripts/tobit_affairs.R
# Writes tests/results/tobit_affairs.json.
#
# Cases (all fitted with AER::tobit, i.e. survival::survreg with dist = "gaussian"):
#   left0         left-censoring at 0 (Tobit type I)
#   left0_right4  left-censoring at 0 and right-censoring at 4
#   weighted      as left0, with case (frequency) weights
#                 w <- (seq_len(601) %% 3) + 1, i.e. 2, 3, 1, 2, 3, 1, ... by row;
#                 survreg treats weights as replication counts
#   offset        as left0, plus offset(0.1 * education) in the formula
#                 (the offset enters the linear predictor with coefficient fixed at 1;
#                 linear_predictors in the JSON include the offset)
#
# Every fit uses survreg.control(rel.tolerance = 1e-12, maxiter = 200), and every
# double is written with sprintf("%.17g").

source("tests/results/r_scripts/common.R")

data("Affairs", package = "AER")
stopifnot(nrow(Affairs) == 601L)
Affairs$w <- (seq_len(nrow(Affairs)) %% 3) + 1

censor_counts <- function(y, left, right) {
  list(
    n_left_censored = sum(y <= left),
    n_right_censored = sum(y >= right),
    n_uncensored = sum(y > left & y < right)
  )
}

run_case <- function(label, call_expr, left, right, weights = NULL) {
  fit <- eval(call_expr)
  out <- fit_summary(fit, deparse_call(call_expr))
  counts <- censor_counts(Affairs$affairs, left, right)
  # cross-check against AER's own censoring table
  ntab <- summary(fit)$n
  stopifnot(
    ntab[["Left-censored"]] == counts$n_left_censored,
    ntab[["Right-censored"]] == counts$n_right_censored,
    ntab[["Uncensored"]] == counts$n_uncensored
  )
  out <- c(
    list(case = label, left = left, right = if (is.finite(right)) right else NULL),
    out,
    list(nobs = nrow(Affairs)),
    counts,
    list(sum_weights = if (is.null(weights)) nrow(Affairs) else sum(weights))
  )
  out
}

ctl <- quote(survreg.control(rel.tolerance = 1e-12, maxiter = 200))

cases <- list(
  left0 = run_case(
    "left0",
    bquote(tobit(affairs ~ age + yearsmarried + religiousness + occupation + rating,
                 data = Affairs, control = .(ctl))),
    left = 0, right = Inf
  ),
  left0_right4 = run_case(
    "left0_right4",
    bquote(tobit(affairs ~ age + yearsmarried + religiousness + occupation + rating,
                 left = 0, right = 4, data = Affairs, control = .(ctl))),
    left = 0, right = 4
  ),
  weighted = run_case(
    "weighted",
    bquote(tobit(affairs ~ age + yearsmarried + religiousness + occupation + rating,
                 data = Affairs, weights = w, control = .(ctl))),
    left = 0, right = Inf, weights = Affairs$w
  ),
  offset = run_case(
    "offset",
    bquote(tobit(affairs ~ age + yearsmarried + religiousness + occupation + rating +
                   offset(0.1 * education),
                 data = Affairs, control = .(ctl))),
    left = 0, right = Inf
  )
)

result <- list(
  description = paste(
    "AER::tobit fits on AER::Affairs (601 obs). 'right' is null when there is no",
    "right-censoring (right = Inf). 'coefficients', 'bse' and 'vcov' include",
    "'Log(scale)' (log of the error standard deviation). Case 'weighted' uses case",
    "weights w = (seq_len(601) %% 3) + 1 (column 'weights' below), 'offset' adds",
    "offset(0.1 * education). linear_predictors include the offset.",
    "loglik_intercept_only is survreg's loglik[1]."
  ),
  script = "tests/results/r_scripts/tobit_affairs.R",
  versions = version_info(),
  control = FIT_CONTROL_ARGS,
  weights = I(Affairs$w),
  cases = cases
)

out_path <- "tests/results/tobit_affairs.json"
write_json_file(result, out_path)
cat("wrote", out_path, "\n")
for (nm in names(cases)) {
  cat(sprintf("%-13s logLik = %.10f  iter = %d\n", nm, cases[[nm]]$loglik,
              cases[[nm]]$iterations))
}
