# Shared helpers for the R reference-fixture scripts in this folder.
#
# Sourced by tobit_affairs.R and intreg_affairs.R (run from the repository
# root). Provides a minimal JSON writer that prints every double with
# sprintf("%.17g"), so that each number round-trips exactly to the IEEE double
# R computed (jsonlite's toJSON stops at 15 significant digits), plus a
# function that extracts the quantities recorded for every fitted survreg model.

suppressPackageStartupMessages({
  library(survival)
  library(AER)
})

# Convergence settings used for every fit: much tighter than survreg's default
# (rel.tolerance = 1e-9, maxiter = 30) so the references are exact to many digits.
FIT_CONTROL_ARGS <- list(rel.tolerance = 1e-12, maxiter = 200)
fit_control <- function() do.call(survreg.control, FIT_CONTROL_ARGS)

# ---------------------------------------------------------------------------
# Minimal JSON writer
#   * named list              -> object
#   * unnamed list            -> array
#   * matrix                  -> array of rows
#   * named atomic vector     -> object
#   * atomic vector wrapped in I(), or length != 1 -> array
#   * unnamed atomic length 1 -> scalar
#   * NA / NaN / +-Inf        -> null
# ---------------------------------------------------------------------------
json_escape <- function(s) {
  s <- gsub("\\", "\\\\", s, fixed = TRUE)
  s <- gsub("\"", "\\\"", s, fixed = TRUE)
  s <- gsub("\n", "\\n", s, fixed = TRUE)
  s <- gsub("\t", "\\t", s, fixed = TRUE)
  paste0("\"", s, "\"")
}

json_scalar <- function(v) {
  if (is.character(v) || is.factor(v)) {
    v <- as.character(v)
    return(if (is.na(v)) "null" else json_escape(v))
  }
  if (is.logical(v)) {
    return(if (is.na(v)) "null" else if (v) "true" else "false")
  }
  if (is.integer(v)) {
    return(if (is.na(v)) "null" else as.character(v))
  }
  if (is.numeric(v)) {
    return(if (!is.finite(v)) "null" else sprintf("%.17g", v))
  }
  stop("unsupported type: ", class(v))
}

to_json <- function(x, indent = 0L) {
  pad <- strrep("  ", indent + 1L)
  pad_end <- strrep("  ", indent)
  if (is.null(x)) {
    return("null")
  }
  if (is.matrix(x)) {
    rows <- vapply(seq_len(nrow(x)), function(i) {
      paste0("[", paste(vapply(x[i, ], json_scalar, ""), collapse = ", "), "]")
    }, "")
    return(paste0("[\n", paste0(pad, rows, collapse = ",\n"), "\n", pad_end, "]"))
  }
  if (is.list(x)) {
    if (length(x) == 0L) {
      return(if (is.null(names(x))) "[]" else "{}")
    }
    vals <- vapply(x, to_json, "", indent = indent + 1L)
    if (!is.null(names(x))) {
      vals <- paste0(json_escape(names(x)), ": ", vals)
      return(paste0("{\n", paste0(pad, vals, collapse = ",\n"), "\n", pad_end, "}"))
    }
    return(paste0("[\n", paste0(pad, vals, collapse = ",\n"), "\n", pad_end, "]"))
  }
  if (is.atomic(x)) {
    as_array <- inherits(x, "AsIs") || length(x) != 1L
    if (!is.null(names(x)) && !inherits(x, "AsIs")) {
      return(to_json(as.list(x), indent))
    }
    vals <- vapply(seq_along(x), function(i) json_scalar(unclass(x)[i]), "")
    if (!as_array) {
      return(vals)
    }
    return(paste0("[", paste(vals, collapse = ", "), "]"))
  }
  stop("cannot convert object of class ", class(x)[1], " to JSON")
}

write_json_file <- function(x, path) {
  con <- file(path, open = "w", encoding = "UTF-8")
  on.exit(close(con))
  writeLines(to_json(x), con)
  invisible(path)
}

# ---------------------------------------------------------------------------
# Quantities recorded for one fitted survreg / tobit model
# ---------------------------------------------------------------------------
version_info <- function() {
  list(
    R = R.version.string,
    AER = as.character(packageVersion("AER")),
    survival = as.character(packageVersion("survival")),
    platform = R.version$platform
  )
}

deparse_call <- function(cl) paste(deparse(cl, width.cutoff = 500L), collapse = " ")

fit_summary <- function(fit, call_string) {
  V <- vcov(fit)
  beta <- coef(fit)
  stopifnot(length(fit$scale) == 1L)
  # coef() of a survreg object omits the scale; vcov() includes "Log(scale)".
  params <- c(beta, "Log(scale)" = log(fit$scale))
  stopifnot(identical(names(params), rownames(V)), identical(rownames(V), colnames(V)))
  se <- sqrt(diag(V))
  names(se) <- names(params)
  ll <- logLik(fit)
  z <- params / se
  list(
    call = call_string,
    coefficients = params,
    param_names = I(names(params)),
    vcov = list(rownames = I(rownames(V)), colnames = I(colnames(V)), values = unname(V)),
    bse = se,
    # Wald z = estimate / se and two-sided normal p-values (as summary.survreg;
    # for Log(scale) this tests log(scale) = 0)
    zvalues = z,
    pvalues = 2 * pnorm(-abs(z)),
    loglik = as.numeric(ll),
    loglik_df = as.integer(attr(ll, "df")),
    # fit$loglik = c(intercept-only model, full model)
    loglik_intercept_only = fit$loglik[1],
    scale = fit$scale,
    iterations = as.integer(fit$iter),
    df_residual = fit$df.residual,
    dist = fit$dist,
    linear_predictors = I(unname(fit$linear.predictors))
  )
}
