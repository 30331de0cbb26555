# Reference fits of the common-orientation structures (VVE, EVE) on Fisher's iris data.
#
# Run from the repository root:
#     Rscript tests/results/r_scripts/gmm_iris_common_orientation.R
# Writes tests/results/gmm_iris_common_orientation.json.
#
# Contents
#   X           the four measurements of iris (150 x 4, rows), so the tests need no R
#   hc_classes  mclust's initial partitions for G = 1..5: hc(X, "VVV", use = "SVD")
#               (mclust's default) cut by hclass()
#   fits        Mclust(X, G, modelNames = m) for m in VVE, EVE and G = 2..5, from those
#               partitions with a tight EM tolerance (emControl(tol = c(1e-11, 1e-11)),
#               the second entry the tolerance of the M-step's inner iterations):
#               loglik, bic, pro, mean (list of G vectors), sigma (list of G matrices)
#   bic         mclustBIC(X, G = 1:9) for all 14 structures with mclust's defaults
#               (NA = null where mclust found the fit singular)

source("tests/results/r_scripts/common.R")
suppressPackageStartupMessages(library(mclust))

X <- as.matrix(iris[, 1:4])
n <- nrow(X)
ctl <- emControl(tol = c(1e-11, 1e-11))
hcp <- hc(X, modelName = "VVV", use = "SVD")
G <- 1:5
cls <- hclass(hcp, G)
hc_classes <- lapply(G, function(g) I(as.integer(cls[, g])))
names(hc_classes) <- as.character(G)

fit_record <- function(fit) {
  p <- fit$parameters
  list(loglik = fit$loglik, bic = fit$bic, pro = I(unname(p$pro)),
       mean = lapply(seq_len(fit$G), function(k) I(unname(p$mean[, k]))),
       sigma = lapply(seq_len(fit$G), function(k) unname(p$variance$sigma[, , k])))
}

fits <- list()
for (m in c("VVE", "EVE")) {
  fits[[m]] <- list()
  for (g in 2:5) {
    f <- Mclust(X, G = g, modelNames = m, initialization = list(hcPairs = hcp),
                control = ctl, verbose = FALSE)
    fits[[m]][[as.character(g)]] <- if (is.null(f)) NULL else fit_record(f)
  }
}

models <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE",
            "EEV", "VEV", "EVV", "VVV")
b <- unclass(mclustBIC(X, G = 1:9, modelNames = models, verbose = FALSE))
bic <- lapply(models, function(m) I(unname(b[, m])))
names(bic) <- models

result <- list(
  description = paste(
    "mclust on iris[, 1:4] (150 x 4): VVE and EVE for G = 2..5 from mclust's",
    "hierarchical partitions with a tight tolerance; BIC (mclust's sign, larger is",
    "better) for G = 1..9 and all 14 structures with mclust's defaults."),
  script = "tests/results/r_scripts/gmm_iris_common_orientation.R",
  versions = list(R = R.version.string, mclust = as.character(packageVersion("mclust")),
                  platform = R.version$platform),
  control = list(tol = I(ctl$tol)),
  columns = I(colnames(X)),
  X = unname(X),
  hc_classes = hc_classes,
  fits = fits,
  models = I(models),
  bic = bic
)
write_json_file(result, "tests/results/gmm_iris_common_orientation.json")
