# Zero-inflated and hurdle extensions on bioChemists: pscl 1.5.5's geometric count part,
# the probit / cloglog / cauchit / log zero links, offsets in both parts, count-distribution
# zero hurdles (zero.dist = "poisson", "negbin", "geometric"); glmmTMB's fixed-effects ZIP
# and ZINB as a second implementation; average marginal effects (derivatives and discrete
# changes) with delta-method SEs from numDeriv on pscl's coefficients and vcov.
# Writes tests/results/zeroinfl_extras.json (the data are in zeroinfl_biochemists.json).
# Run from the repository root:
#   Rscript tests/results/r_scripts/zeroinfl_extras.R
source("tests/results/r_scripts/common.R")  # to_json, write_json_file
suppressPackageStartupMessages({library(pscl); library(glmmTMB); library(numDeriv)})
data("bioChemists", package = "pscl")
d <- bioChemists
# offsets: log(phd) in the count part, 0.3 * kid5 in the zero part
d$lphd <- log(d$phd)
d$zoff <- 0.3 * d$kid5
zctl <- zeroinfl.control(reltol = 1e-14, maxit = 50000)
hctl <- hurdle.control(reltol = 1e-14, maxit = 50000)
th_case <- function(fit, call_string, part) {
  out <- list(call = call_string, coefficients = coef(fit), bse = sqrt(diag(vcov(fit))),
              loglik = as.numeric(logLik(fit)), df = as.integer(attr(logLik(fit), "df")))
  dist <- if (is.list(fit$dist)) fit$dist else list(count = fit$dist)
  if (dist$count == "negbin") {
    out$theta <- unname(fit$theta[1])
    out$se_log_theta <- unname(fit$SE.logtheta[1])
  }
  if (!is.null(dist$zero) && dist$zero == "negbin") {
    out$theta_zero <- unname(fit$theta["zero"])
    out$se_log_theta_zero <- unname(fit$SE.logtheta["zero"])
  }
  out
}
F5 <- art ~ fem + mar + kid5 + phd + ment
zi <- list()
zi$geometric <- th_case(zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, data = d,
                                 dist = "geometric", control = zctl), "dist = 'geometric'")
for (lk in c("probit", "cloglog", "cauchit")) {
  zi[[paste0("poisson_", lk)]] <- th_case(
    zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment + kid5, data = d, link = lk,
             control = zctl), paste0("poisson, link = '", lk, "'"))
}
zi$negbin_probit <- th_case(zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, data = d,
                                     dist = "negbin", link = "probit", control = zctl),
                            "negbin, link = 'probit'")
zi$poisson_log <- th_case(zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, data = d,
                                   link = "log", control = zctl), "poisson, link = 'log'")
zi$offsets <- th_case(zeroinfl(art ~ fem + mar + kid5 + ment + offset(lphd) | ment + offset(zoff),
                               data = d, dist = "negbin", control = zctl),
                      "negbin, count offset log(phd), zero offset 0.3 kid5")
hu <- list()
for (zd in c("poisson", "negbin", "geometric")) {
  hu[[paste0("zero_", zd)]] <- th_case(
    hurdle(art ~ fem + mar + kid5 + phd + ment | fem + kid5 + ment, data = d, dist = "negbin",
           zero.dist = zd, control = hctl), paste0("dist = 'negbin', zero.dist = '", zd, "'"))
}
# statsmodels' HurdleCountModel (zerodist = "poisson" by default) on the same regressors
hu$same_poisson_poisson <- th_case(hurdle(F5, data = d, zero.dist = "poisson", control = hctl),
                                   "hurdle(F5, zero.dist = 'poisson')")
hu$same_negbin_poisson <- th_case(hurdle(F5, data = d, dist = "negbin", zero.dist = "poisson",
                                         control = hctl),
                                  "hurdle(F5, dist = 'negbin', zero.dist = 'poisson')")
hu$geometric_probit <- th_case(hurdle(art ~ fem + mar + kid5 + phd + ment | ment, data = d,
                                      dist = "geometric", link = "probit", control = hctl),
                               "dist = 'geometric', link = 'probit'")
hu$poisson_cloglog <- th_case(hurdle(art ~ fem + mar + kid5 + phd + ment | ment, data = d,
                                     link = "cloglog", control = hctl),
                              "dist = 'poisson', link = 'cloglog'")
hu$offsets <- th_case(hurdle(art ~ fem + mar + kid5 + ment + offset(lphd) | ment + offset(zoff),
                             data = d, dist = "negbin", control = hctl),
                      "negbin, count offset log(phd), zero offset 0.3 kid5")
# a negative-binomial zero hurdle whose theta is identified (on bioChemists the zero
# part's theta drifts towards 0, SE(log theta) > 30): simulated, n = 3000, stored in the JSON
set.seed(20261202)
n <- 3000
sim <- data.frame(x = rnorm(n), z = rnorm(n))
mz <- exp(0.2 + 0.8 * sim$z)
pz <- 1 - (0.6 / (0.6 + mz))^0.6                  # P(y > 0) from NB(mu_z, theta = 0.6)
mc <- exp(0.6 + 0.4 * sim$x)
ypos <- integer(n)
for (i in seq_len(n)) repeat { v <- rnbinom(1, size = 2, mu = mc[i]); if (v > 0) { ypos[i] <- v; break } }
sim$y <- ifelse(runif(n) < pz, ypos, 0L)
hu$sim_zero_negbin <- th_case(hurdle(y ~ x | z, data = sim, dist = "negbin", zero.dist = "negbin",
                                     control = hctl),
                              "simulated: hurdle(y ~ x | z, dist = 'negbin', zero.dist = 'negbin')")
# glmmTMB: the same fixed-effects models by TMB's Laplace-free ML (no random effects)
tmb <- function(fam) {
  fit <- glmmTMB(F5, ziformula = ~ ment, family = fam, data = d,
                 control = glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4,
                                                         rel.tol = 1e-14)))
  cf <- fixef(fit)
  se <- lapply(vcov(fit), function(v) sqrt(diag(v)))
  out <- list(count = cf$cond, zero = cf$zi, count_se = se$cond, zero_se = se$zi,
              loglik = as.numeric(logLik(fit)))
  if (!is.null(sigma(fit)) && fam$family == "nbinom2") out$theta <- sigma(fit)
  out
}
glmm <- list(poisson_ment = tmb(poisson()), negbin_ment = tmb(nbinom2()))
# glmmTMB's own example data (Salamanders, Price et al. 2016), without the random effects:
# ZIP and ZINB with count ~ spp + mined, zi = ~ mined, and the truncated-NB2 hurdle with
# zi = ~ spp + mined (glmmTMB's zero part models P(y = 0), pscl's and ours P(y > 0))
data("Salamanders", package = "glmmTMB")
sal_fit <- function(fam, zi) {
  fit <- glmmTMB(count ~ spp + mined, ziformula = zi, family = fam, data = Salamanders,
                 control = glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4,
                                                         rel.tol = 1e-12)))
  cf <- fixef(fit)
  se <- lapply(vcov(fit), function(v) sqrt(diag(v)))
  out <- list(count = cf$cond, zero = cf$zi, count_se = se$cond, zero_se = se$zi,
              loglik = as.numeric(logLik(fit)))
  if (fam$family %in% c("nbinom2", "truncated_nbinom2")) out$theta <- sigma(fit)
  out
}
salamanders <- list(
  zip = sal_fit(poisson(), ~ mined), zinb = sal_fit(nbinom2(), ~ mined),
  hurdle_nb = sal_fit(truncated_nbinom2(), ~ spp + mined),
  data = list(count = I(Salamanders$count), spp = I(as.character(Salamanders$spp)),
              mined = I(as.character(Salamanders$mined)), spp_levels = I(levels(Salamanders$spp)),
              mined_levels = I(levels(Salamanders$mined))))
# average marginal effects of ZINB (| ment + kid5) and the binomial-logit negbin hurdle,
# on the mean, the count mean, the zero part's prediction and P(y = 0).  Delta method over
# all parameters, log(theta) included (pscl's vcov() omits it; the full covariance is the
# inverse of optim's Hessian, which pscl keeps in fit$optim)
ame_case <- function(fit, hurdle_model) {
  X <- model.matrix(fit, "count"); Z <- model.matrix(fit, "zero")
  p <- ncol(X); q <- ncol(Z)
  if (hurdle_model) {   # (count coefficients, log theta, zero coefficients)
    full <- c(fit$optim$count$par, fit$optim$zero$par)
    V <- matrix(0, p + 1 + q, p + 1 + q)
    V[1:(p + 1), 1:(p + 1)] <- solve(-fit$optim$count$hessian)
    V[(p + 2):(p + 1 + q), (p + 2):(p + 1 + q)] <- solve(-fit$optim$zero$hessian)
    split <- function(b) list(beta = b[1:p], th = exp(b[p + 1]), gamma = b[(p + 2):(p + 1 + q)])
  } else {              # (count coefficients, zero coefficients, log theta)
    full <- fit$optim$par
    V <- solve(-fit$optim$hessian)
    split <- function(b) list(beta = b[1:p], gamma = b[(p + 1):(p + q)], th = exp(b[p + q + 1]))
  }
  pred <- function(b, X, Z) {
    s <- split(b)
    mu <- exp(drop(X %*% s$beta)); g <- plogis(drop(Z %*% s$gamma))
    f0 <- (s$th / (s$th + mu))^s$th
    if (hurdle_model) {
      r <- g / (1 - f0)
      list(mean = r * mu, count = mu, zero = r, prob0 = 1 - g)
    } else list(mean = (1 - g) * mu, count = mu, zero = g, prob0 = g + (1 - g) * f0)
  }
  effect <- function(b, v, which) {
    if (v %in% c("femWomen", "marMarried")) {
      X1 <- X; Z1 <- Z; X0 <- X; Z0 <- Z
      X1[, v] <- 1; X0[, v] <- 0
      if (v %in% colnames(Z)) { Z1[, v] <- 1; Z0[, v] <- 0 }
      return(mean(pred(b, X1, Z1)[[which]] - pred(b, X0, Z0)[[which]]))
    }
    g <- function(h) {
      X1 <- X; Z1 <- Z; X1[, v] <- X1[, v] + h
      if (v %in% colnames(Z)) Z1[, v] <- Z1[, v] + h
      mean(pred(b, X1, Z1)[[which]])
    }
    numDeriv::grad(g, 0)
  }
  out <- list()
  for (which in c("mean", "count", "zero", "prob0")) {
    est <- c(); se <- c()
    for (v in c("femWomen", "marMarried", "kid5", "phd", "ment")) {
      est[v] <- effect(full, v, which)
      J <- numDeriv::grad(function(b) effect(b, v, which), full)
      se[v] <- sqrt(drop(t(J) %*% V %*% J))
    }
    out[[which]] <- list(effect = est, se = se)
  }
  out
}
zm <- zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment + kid5, data = d, dist = "negbin",
               control = zctl)
hm <- hurdle(art ~ fem + mar + kid5 + phd + ment | ment + kid5, data = d, dist = "negbin",
             control = hctl)
ame <- list(zeroinfl = ame_case(zm, FALSE), hurdle = ame_case(hm, TRUE))
write_json_file(list(versions = list(R = R.version.string,
                                     pscl = as.character(packageVersion("pscl")),
                                     glmmTMB = as.character(packageVersion("glmmTMB")),
                                     numDeriv = as.character(packageVersion("numDeriv"))),
                     zeroinfl = zi, hurdle = hu, salamanders = salamanders,
                     sim = list(y = I(sim$y), x = I(sim$x), z = I(sim$z)), glmmTMB = glmm, margeff = ame),
                "tests/results/zeroinfl_extras.json")
