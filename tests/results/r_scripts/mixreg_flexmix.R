# Finite mixtures of regressions: flexmix 2.3.18 and mixtools 2.0.0 on their
# documented examples.  Writes tests/results/mixreg_flexmix.json (data included, so
# the Python tests need neither R nor the R data sets).  Run from the repository root:
#   Rscript tests/results/r_scripts/mixreg_flexmix.R
# Each case records the call, the log-likelihood, its df, BIC and ICL as flexmix
# computes them, the final posterior (MAP) clusters, the parameters per component and
# flexmix's own standard errors (refit(), an optim Hessian) where it gives them.
source("tests/results/r_scripts/common.R")  # to_json, write_json_file
suppressPackageStartupMessages({
  library(flexmix)
  library(mixtools)
})
CTRL <- list(tolerance = 1e-13, iter.max = 20000, minprior = 0)

comp_params <- function(fit) {
  p <- parameters(fit)
  lapply(seq_len(ncol(p)), function(k) as.list(setNames(p[, k], rownames(p))))
}

flex_case <- function(fit, call_string) {
  ll <- logLik(fit)
  out <- list(
    call = call_string,
    loglik = as.numeric(ll), df = as.integer(attr(ll, "df")), nobs = attr(ll, "nobs"),
    BIC = BIC(fit), AIC = AIC(fit), ICL = ICL(fit),
    cluster = I(as.integer(clusters(fit))),
    prior = I(unname(prior(fit))),
    components = comp_params(fit),
    iterations = fit@iter, converged = fit@converged
  )
  if (!is.null(fit@concomitant) && length(fit@concomitant@coef) > 0 &&
      ncol(fit@concomitant@x) > 1) {
    out$concomitant <- list(rownames = I(rownames(fit@concomitant@coef)),
                            values = unname(fit@concomitant@coef))
  }
  rf <- try(refit(fit), silent = TRUE)
  if (!inherits(rf, "try-error")) {
    v <- rf@vcov
    out$refit <- list(names = I(colnames(v)), coef = I(unname(rf@coef)),
                      se = I(unname(sqrt(diag(v)))))
  }
  out
}

cases <- list()
data("NPreg", package = "flexmix")
NPreg$class <- as.integer(NPreg$class)

# Gaussian: flexmix's own example (?flexmix), started from the true classes
set.seed(1)
f <- flexmix(yn ~ x + I(x^2), data = NPreg, k = 2, cluster = NPreg$class, control = CTRL)
cases$npreg_gaussian <- flex_case(f, "flexmix(yn ~ x + I(x^2), data = NPreg, k = 2, cluster = NPreg$class)")
# flexmix's sigma is sqrt(sum(w r^2) / (sum(w) - rank)): record it to show the difference
cases$npreg_gaussian$sigma_note <- "flexmix sigma divides by sum(posterior) - rank"

# Poisson on the same data
f <- flexmix(yp ~ x, data = NPreg, k = 2, cluster = NPreg$class,
             model = FLXMRglm(family = "poisson"), control = CTRL)
cases$npreg_poisson <- flex_case(f, "flexmix(yp ~ x, data = NPreg, k = 2, model = FLXMRglm(family = 'poisson'), cluster = NPreg$class)")

# Poisson with an offset: the seizure example of ?seizure
data("seizure", package = "flexmix")
set.seed(123)
f <- stepFlexmix(Seizures ~ Treatment * log(Day), data = seizure, k = 2, nrep = 10,
                 model = FLXMRglm(family = "poisson", offset = log(seizure$Hours)),
                 control = CTRL, verbose = FALSE)
cases$seizure_offset <- flex_case(f, "stepFlexmix(Seizures ~ Treatment * log(Day), data = seizure, k = 2, nrep = 10, model = FLXMRglm(family = 'poisson', offset = log(seizure$Hours)))")

# Poisson with a concomitant model: Wang, Cockburn & Puterman's patent data (?patent)
data("patent", package = "flexmix")
set.seed(123)
f <- stepFlexmix(Patents ~ lgRD, k = 3, data = patent, nrep = 10,
                 model = FLXMRglm(family = "poisson"), concomitant = FLXPmultinom(~ RDS),
                 control = CTRL, verbose = FALSE)
cases$patent_concomitant <- flex_case(f, "stepFlexmix(Patents ~ lgRD, k = 3, data = patent, nrep = 10, model = FLXMRglm(family = 'poisson'), concomitant = FLXPmultinom(~RDS))")

# Grouped binomial with a fixed (shared) treatment effect: ?betablocker
data("betablocker", package = "flexmix")
set.seed(123)
f <- stepFlexmix(cbind(Deaths, Total - Deaths) ~ 1 | Center, data = betablocker, k = 3,
                 nrep = 10, model = FLXMRglmfix(family = "binomial", fixed = ~ Treatment),
                 control = CTRL, verbose = FALSE)
cases$betablocker_grouped <- flex_case(f, "stepFlexmix(cbind(Deaths, Total - Deaths) ~ 1 | Center, data = betablocker, k = 3, nrep = 10, model = FLXMRglmfix(family = 'binomial', fixed = ~Treatment))")

# mixtools: regmixEM on its NOdata example (?regmixEM); an MLE (sigma divides by n)
data("NOdata", package = "mixtools")
set.seed(100)
m <- regmixEM(NOdata$Equivalence, NOdata$NO, epsilon = 1e-12, maxit = 20000, verb = FALSE)
mix_cases <- list(nodata = list(
  call = "regmixEM(Equivalence, NO, epsilon = 1e-12, maxit = 20000)",
  loglik = m$loglik, lambda = I(m$lambda), beta = unname(m$beta), sigma = I(m$sigma),
  posterior_map = I(as.integer(apply(m$posterior, 1, which.max))),
  iterations = length(m$all.loglik)))

out <- list(
  versions = list(R = R.version.string,
                  flexmix = as.character(packageVersion("flexmix")),
                  mixtools = as.character(packageVersion("mixtools"))),
  control = CTRL,
  data = list(
    NPreg = list(x = I(NPreg$x), yn = I(NPreg$yn), yp = I(NPreg$yp), class = I(NPreg$class)),
    seizure = list(Seizures = I(seizure$Seizures), Hours = I(seizure$Hours),
                   Treatment = I(as.character(seizure$Treatment)), Day = I(seizure$Day)),
    patent = list(Patents = I(patent$Patents), RDS = I(patent$RDS), lgRD = I(patent$lgRD)),
    betablocker = list(Deaths = I(betablocker$Deaths), Total = I(betablocker$Total),
                       Center = I(betablocker$Center),
                       Treatment = I(as.character(betablocker$Treatment))),
    NOdata = list(NO = I(NOdata$NO), Equivalence = I(NOdata$Equivalence))
  ),
  cases = cases,
  mixtools = mix_cases
)
write_json_file(out, "tests/results/mixreg_flexmix.json")
