# Marginal effects of the Tobit model on Fair's Affairs data, with delta-method
# standard errors, computed here from their closed forms (independently of the
# numerical Jacobian emstats uses).
#
# Run from the repository root:
#     Rscript tests/results/r_scripts/tobit_margeff.R
# Writes tests/results/tobit_margeff.json.
#
# Model: AER::tobit(affairs ~ age + yearsmarried + religiousness + occupation + rating),
# left-censoring at 0, theta = (beta, log sigma), z_i = x_i'beta / sigma.
#   E[y_i]               = sigma * (z Phi(z) + phi(z));  dE[y_i]/dx_ij = beta_j Phi(z_i)
#   P(y_i > 0)           = Phi(z_i);                      dP/dx_ij      = beta_j phi(z_i) / sigma
# "overall" = average over the sample of the derivative; "mean" = the derivative at
# the sample means of the regressors.  Gradients with respect to theta:
#   d/d beta_k [beta_j Phi(z)]         = 1{j=k} Phi(z) + beta_j phi(z) x_k / sigma
#   d/d log sigma [beta_j Phi(z)]      = -beta_j phi(z) z
#   d/d beta_k [beta_j phi(z)/sigma]   = 1{j=k} phi(z)/sigma - beta_j z phi(z) x_k / sigma^2
#   d/d log sigma [beta_j phi(z)/sigma] = beta_j phi(z) (z^2 - 1) / sigma

source("tests/results/r_scripts/common.R")

data("Affairs", package = "AER")
fit <- tobit(affairs ~ age + yearsmarried + religiousness + occupation + rating,
             data = Affairs, control = fit_control())
X <- model.matrix(fit)
beta <- coef(fit)
sigma <- fit$scale
V <- vcov(fit)
p <- length(beta)
slopes <- 2:p

effects <- function(Xe, which) {
  z <- drop(Xe %*% beta) / sigma
  ph <- dnorm(z)
  Ph <- pnorm(z)
  eff <- numeric(length(slopes))
  J <- matrix(0, length(slopes), p + 1)
  for (a in seq_along(slopes)) {
    j <- slopes[a]
    if (which == "mean") {
      eff[a] <- beta[j] * mean(Ph)
      for (k in 1:p) J[a, k] <- (j == k) * mean(Ph) + beta[j] * mean(ph * Xe[, k]) / sigma
      J[a, p + 1] <- -beta[j] * mean(ph * z)
    } else {
      eff[a] <- beta[j] * mean(ph) / sigma
      for (k in 1:p) {
        J[a, k] <- (j == k) * mean(ph) / sigma - beta[j] * mean(z * ph * Xe[, k]) / sigma^2
      }
      J[a, p + 1] <- beta[j] * mean(ph * (z^2 - 1)) / sigma
    }
  }
  se <- sqrt(diag(J %*% V %*% t(J)))
  names(eff) <- names(se) <- names(beta)[slopes]
  list(effect = eff, se = se)
}

xbar <- matrix(colMeans(X), nrow = 1)
out <- list(
  description = paste(
    "Tobit marginal effects on Affairs (left-censoring at 0) with delta-method",
    "standard errors from closed-form gradients; see the script header."
  ),
  script = "tests/results/r_scripts/tobit_margeff.R",
  versions = version_info(),
  cases = list(
    overall_mean = effects(X, "mean"),
    atmean_mean = effects(xbar, "mean"),
    overall_prob = effects(X, "prob"),
    atmean_prob = effects(xbar, "prob")
  )
)
write_json_file(out, "tests/results/tobit_margeff.json")
