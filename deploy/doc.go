// Package deploy holds the offline checks of the Kubernetes manifests in
// deploy/kubernetes: each one decodes strictly into its Kubernetes or
// Prometheus Operator API type, and together they agree with each other, with
// the image the Dockerfile builds and with the exporter's own config check.
// It is a module of its own, so that the exporter's go.mod does not carry the
// Kubernetes API packages. Run with: cd deploy && go test ./...
package deploy
