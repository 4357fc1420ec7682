// Package deploy holds the deployment and operations files of keydelivery,
// not Go code: the container image (Dockerfile), Kubernetes manifests
// (kubernetes/), a local Compose stack (compose/), a hardened systemd unit
// (systemd/), the Grafana dashboard (grafana/) and the Prometheus alert
// rules with their unit tests (prometheus/). docs/operations.md explains how
// to use them.
//
// Its tests check what can be checked without a container engine or a
// cluster: every file parses, the manifests decode strictly into the
// Kubernetes API types and agree with each other and with the server's
// flags, promtool checks and unit-tests the rules, systemd-analyze verifies
// the unit, and every metric the dashboard and the rules query exists in a
// real /metrics scrape of the server built from this tree.
//
// Nothing imports this package, and it imports no package of ours (its
// tests use internal/redistest to run the server on a real Redis). It is a
// module of its own (deploy/go.mod), so that the Kubernetes API types and
// the YAML decoder its tests need stay out of the server's go.mod; the
// go.work at the repository root puts it beside the server's module, so
// `go test ./deploy/...` runs from the root against the tree it sits in.
package deploy
