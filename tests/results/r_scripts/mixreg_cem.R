# Classification EM: flexmix 2.3.18 with classify = "hard" on NPreg (yn ~ x, k = 2),
# started from the true classes.  Writes tests/results/mixreg_cem.json.  Run from the
# repository root:  Rscript tests/results/r_scripts/mixreg_cem.R
source("tests/results/r_scripts/common.R")  # to_json, write_json_file
suppressPackageStartupMessages(library(flexmix))
data("NPreg", package = "flexmix")
fit <- flexmix(yn ~ x, data = NPreg, k = 2, cluster = NPreg$class,
               control = list(classify = "hard", iter.max = 1000, minprior = 0))
p <- parameters(fit)
out <- list(
  call = 'flexmix(yn ~ x, data = NPreg, k = 2, cluster = NPreg$class, control = list(classify = "hard"))',
  version = as.character(packageVersion("flexmix")),
  start = I(as.integer(NPreg$class)),
  cluster = I(as.integer(clusters(fit))),
  prior = I(unname(prior(fit))),
  components = lapply(seq_len(ncol(p)), function(k) as.list(setNames(p[, k], rownames(p)))),
  iterations = fit@iter, converged = fit@converged
)
write_json_file(out, "tests/results/mixreg_cem.json")
