# Reference results for interval regression (Gaussian survreg with mixed
# left-, right-, interval-censored and exact responses) on Fair's Affairs data.
#
# Run from the repository root:
#     Rscript tests/results/r_scripts/intreg_affairs.R
# Writes tests/results/intreg_affairs.json.
#
# The Affairs response is a coded count for the past year
# (0 = none; 1, 2, 3 = that many times; 7 = 4-10 times; 12 = monthly, weekly
# or daily, i.e. 12 or more times). It is turned into bounds as follows:
#     0        -> lower = NA, upper = 0    (left-censored at 0)
#     1, 2, 3  -> lower = upper = value    (exact)
#     7        -> lower = 4,  upper = 10   (interval-censored)
#     12       -> lower = 12, upper = NA   (right-censored at 12)
# and fitted with
#     survreg(Surv(lower, upper, type = "interval2") ~ age + yearsmarried +
#             religiousness + occupation + rating, data = d, dist = "gaussian")
# The constructed bounds are written to the JSON as 'lower' and 'upper'
# (null = NA = unbounded on that side), in the row order of AER::Affairs.
#
# The fit uses survreg.control(rel.tolerance = 1e-12, maxiter = 200), and every
# double is written with sprintf("%.17g").

source("tests/results/r_scripts/common.R")

data("Affairs", package = "AER")
stopifnot(nrow(Affairs) == 601L, all(Affairs$affairs %in% c(0, 1, 2, 3, 7, 12)))

make_bounds <- function(y) {
  lower <- ifelse(y == 0, NA_real_, ifelse(y == 7, 4, y))
  upper <- ifelse(y == 12, NA_real_, ifelse(y == 7, 10, y))
  data.frame(lower = lower, upper = upper)
}

d <- cbind(Affairs, make_bounds(Affairs$affairs))

call_expr <- quote(
  survreg(Surv(lower, upper, type = "interval2") ~ age + yearsmarried +
            religiousness + occupation + rating,
          data = d, dist = "gaussian",
          control = survreg.control(rel.tolerance = 1e-12, maxiter = 200))
)
fit <- eval(call_expr)

# Censoring counts from the Surv object (status: 0 right, 1 exact, 2 left,
# 3 interval) and cross-checked against the coding rule above.
status <- fit$y[, "status"]
counts <- list(
  n_left_censored = sum(status == 2),
  n_right_censored = sum(status == 0),
  n_interval_censored = sum(status == 3),
  n_exact = sum(status == 1)
)
y <- Affairs$affairs
stopifnot(
  counts$n_left_censored == sum(y == 0),
  counts$n_right_censored == sum(y == 12),
  counts$n_interval_censored == sum(y == 7),
  counts$n_exact == sum(y %in% c(1, 2, 3))
)

case <- c(
  list(case = "intreg"),
  fit_summary(fit, deparse_call(call_expr)),
  list(nobs = nrow(d)),
  counts
)

result <- list(
  description = paste(
    "survival::survreg interval regression (dist = 'gaussian') on AER::Affairs",
    "(601 obs) with response bounds built from the coded affairs count:",
    "0 -> (-Inf, 0] left-censored; 1, 2, 3 exact; 7 -> [4, 10] interval;",
    "12 -> [12, Inf) right-censored. 'lower'/'upper' hold these bounds (null =",
    "unbounded). 'coefficients', 'bse' and 'vcov' include 'Log(scale)'.",
    "loglik_intercept_only is survreg's loglik[1]."
  ),
  script = "tests/results/r_scripts/intreg_affairs.R",
  versions = version_info(),
  control = FIT_CONTROL_ARGS,
  coding = list(
    "0" = I(c(NA, 0)), "1" = I(c(1, 1)), "2" = I(c(2, 2)), "3" = I(c(3, 3)),
    "7" = I(c(4, 10)), "12" = I(c(12, NA))
  ),
  lower = I(d$lower),
  upper = I(d$upper),
  cases = list(intreg = case)
)

out_path <- "tests/results/intreg_affairs.json"
write_json_file(result, out_path)
cat("wrote", out_path, "\n")
cat(sprintf("intreg logLik = %.10f  iter = %d\n", case$loglik, case$iterations))
print(cbind(estimate = case$coefficients, se = case$bse), digits = 10)
print(unlist(counts))
