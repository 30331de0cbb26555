# Reference results for emstats.glmm(..., slope = "x") (issue 18, item 1: a random
# intercept plus one slope), binomial logit.
#
# Run from the repository root:
#     Rscript tests/results/r_scripts/glmm_slope.R
# Writes tests/results/glmm_slope.json and tests/results/glmm_slope.csv.
#
# glmer fits (1 + x | g) models with nAGQ = 1 (Laplace) only: adaptive quadrature with
# more nodes is for a single scalar random effect.  So the witnesses are
#   direct   an independent R implementation of the 2-D adaptive Gauss-Hermite
#            log-likelihood (tensor product of statmod's normal rule, K = 20 nodes per
#            dimension, at each group's mode found by Newton's method, scaled by the
#            Cholesky factor of the curvature there), maximised by optim (BFGS, then
#            Nelder-Mead polish) from glmer's estimates; numDeriv's Hessian of it for
#            the standard errors; and the same function at two other points
#   laplace  glmer(y ~ x + (1 + x | g), family = binomial) (nAGQ = 1) with tight
#            control: close to the AGQ optimum, not equal (Laplace error)
# Parameters: (beta, log a, c, log d) with Sigma = L L', L = [[a, 0], [c, d]].
# Data: simulated (set.seed(20261202)), 60 groups of 15 rows, x ~ N(0, 1),
# b ~ N(0, [[1, 0.3], [0.3, 0.45]]), eta = -0.3 + 0.8 x + b0 + b1 x.

source("tests/results/r_scripts/common.R")
suppressPackageStartupMessages({library(lme4); library(statmod); library(numDeriv)})

set.seed(20261202)
G <- 60; m <- 15
g <- rep(seq_len(G), each = m)
x <- rnorm(G * m)
Sig <- matrix(c(1, 0.3, 0.3, 0.45), 2)
b <- matrix(rnorm(2 * G), G) %*% chol(Sig)
eta <- -0.3 + 0.8 * x + b[g, 1] + b[g, 2] * x
y <- as.integer(runif(G * m) < plogis(eta))
d <- data.frame(y = y, x = x, g = g)
write.csv(d, "tests/results/glmm_slope.csv", row.names = FALSE, quote = FALSE)

X <- cbind(1, x)
rows <- split(seq_along(y), g)
K <- 20
gq <- gauss.quad.prob(K, "normal")            # nodes and weights of N(0, 1), sum 1
T1 <- rep(gq$nodes, each = K); T2 <- rep(gq$nodes, times = K)
W <- rep(gq$weights, each = K) * rep(gq$weights, times = K)
logphi2 <- dnorm(T1, log = TRUE) + dnorm(T2, log = TRUE)

agq_loglik <- function(par) {
  if (any(abs(par[c(3, 5)]) > 20)) return(-1e10)   # keeps optim's line search finite
  beta <- par[1:2]; a <- exp(par[3]); cc <- par[4]; dd <- exp(par[5])
  L <- matrix(c(a, cc, 0, dd), 2); S <- L %*% t(L); P <- solve(S)
  lognorm <- -log(2 * pi) - 0.5 * log(det(S))
  total <- 0
  for (r in rows) {
    e0 <- drop(X[r, ] %*% beta); Z <- cbind(1, x[r]); yy <- y[r]
    bm <- c(0, 0)
    for (it in 1:100) {
      p <- plogis(e0 + drop(Z %*% bm))
      gr <- drop(t(Z) %*% (yy - p)) - drop(P %*% bm)
      H <- t(Z) %*% (Z * (p * (1 - p))) + P
      step <- solve(H, gr)
      bm <- bm + step
      if (max(abs(step)) < 1e-13) break
    }
    p <- plogis(e0 + drop(Z %*% bm))
    H <- t(Z) %*% (Z * (p * (1 - p))) + P
    R <- chol(H)                               # H = R'R, R upper triangular
    B <- t(backsolve(R, rbind(T1, T2))) + matrix(bm, K * K, 2, byrow = TRUE)
    E <- matrix(e0, K * K, length(r), byrow = TRUE) + B[, 1] %o% rep(1, length(r)) +
      B[, 2] %o% x[r]
    lc <- rowSums(matrix(yy, nrow(E), length(r), byrow = TRUE) * E - log1p(exp(E)))
    lp <- lc - 0.5 * rowSums((B %*% P) * B) + lognorm
    v <- lp - logphi2 + log(W) - sum(log(diag(R)))
    mx <- max(v)
    total <- total + mx + log(sum(exp(v - mx)))
  }
  total
}

ctrl <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-13,
                     optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e5))
lap <- glmer(y ~ x + (1 + x | g), family = binomial, data = d, control = ctrl)
th <- getME(lap, "theta")                     # lower Cholesky factor: a, c, d
par0 <- unname(c(fixef(lap), log(th[1]), th[2], log(th[3])))
cat("glmer Laplace:", par0, as.numeric(logLik(lap)), "AGQ there:", agq_loglik(par0), "\n")
opt <- optim(par0, function(p) -agq_loglik(p), method = "BFGS",
             control = list(reltol = 1e-15, maxit = 1000, parscale = rep(0.1, 5)))
opt2 <- optim(opt$par, function(p) -agq_loglik(p), method = "Nelder-Mead",
              control = list(reltol = 1e-15, maxit = 4000))
best <- if (opt2$value < opt$value) opt2 else opt
H <- hessian(agq_loglik, best$par)
V <- solve(-H)
grad_at <- grad(agq_loglik, best$par)
vc <- as.data.frame(VarCorr(lap))
pts <- list(c(-0.2, 0.7, log(0.9), 0.2, log(0.5)), c(0.0, 1.0, log(1.3), -0.3, log(0.8)))
result <- list(
  data = "tests/results/glmm_slope.csv (simulated in this script)",
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  statmod = as.character(packageVersion("statmod")),
                  numDeriv = as.character(packageVersion("numDeriv"))),
  K = K, nobs = nrow(d), n_groups = G,
  direct = list(par = I(best$par), loglik = -best$value, vcov = V, bse = I(sqrt(diag(V))),
                max_abs_grad = max(abs(grad_at)), convergence = best$convergence,
                points = lapply(pts, function(p) list(par = I(p), loglik = agq_loglik(p)))),
  laplace = list(fixef = I(unname(fixef(lap))), theta = I(unname(th)),
                 sd = I(vc$sdcor[1:2]), corr = vc$sdcor[3],
                 loglik = as.numeric(logLik(lap)),
                 message = paste(lap@optinfo$message, collapse = " "))
)
write_json_file(result, "tests/results/glmm_slope.json")
