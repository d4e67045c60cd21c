//go:build tools

// Package tools records the one package this module exists to build, so that `go mod tidy` keeps
// Helm's dependencies in go.sum.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
