package keystore

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// storeOp names a store operation for the metrics.
type storeOp int

const (
	opGet storeOp = iota
	opCreate
	opCreateBatch
	opUpdate
	opDelete
	opList
	opListAsset
	opGetMeta
	opCreateMeta
	opListMeta
	opPing
	opNotify
	opCreateExpiring
	opGetExpiring
	opLink
	opUnlink
	opCountUse
	opCompact
	numOps
)

// writes reports whether op writes to the store.
func (op storeOp) writes() bool {
	switch op {
	case opCreate, opCreateBatch, opUpdate, opDelete, opCreateMeta, opCreateExpiring, opLink, opUnlink:
		return true
	}
	return false
}

var opNames = [numOps]string{"get", "create", "create_batch", "update", "delete", "list", "list_asset",
	"get_meta", "create_meta", "list_meta", "ping", "notify", "create_expiring", "get_expiring", "link", "unlink", "count_use", "compact"}

// The results a store operation is counted under.
const (
	resOK = iota
	resNotFound
	resExists
	resUnavailable
	resError
	resNotReplicated
	numResults
)

// resultNames are the result label values. A full store (ErrFull) counts as
// unavailable, so the store-unavailable alert fires for it;
// not_replicated is a write the replicas did not confirm in time.
var resultNames = [numResults]string{"ok", "not_found", "exists", "unavailable", "error", "not_replicated"}

// storeMetrics holds every child up front, so counting an operation on the
// hot path is two array lookups.
type storeMetrics struct {
	count    [numOps][numResults]prometheus.Counter
	duration [numOps]prometheus.Observer
}

// latencyBuckets resolve a local bbolt read (microseconds) up to the store
// deadline.
var latencyBuckets = []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

func newStoreMetrics(reg prometheus.Registerer, backend string) *storeMetrics {
	if reg == nil {
		return nil
	}
	counts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "keydelivery", Subsystem: "store", Name: "operations_total",
		Help:        "Key store operations by operation and result.",
		ConstLabels: prometheus.Labels{"backend": backend},
	}, []string{"operation", "result"})
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "keydelivery", Subsystem: "store", Name: "operation_duration_seconds",
		Help:        "Key store operation latency, including the deadline wait of a store that does not answer.",
		ConstLabels: prometheus.Labels{"backend": backend}, Buckets: latencyBuckets,
	}, []string{"operation"})
	reg.MustRegister(counts, durations)
	m := &storeMetrics{}
	for op := range numOps {
		m.duration[op] = durations.WithLabelValues(opNames[op])
		for r := range numResults {
			m.count[op][r] = counts.WithLabelValues(opNames[op], resultNames[r])
		}
	}
	return m
}

func (m *storeMetrics) observe(op storeOp, err error, d time.Duration) {
	if m == nil {
		return
	}
	r := resOK
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		r = resNotFound
	case errors.Is(err, ErrExists):
		r = resExists
	case errors.Is(err, ErrUnavailable):
		r = resUnavailable
	case errors.Is(err, ErrNotReplicated):
		r = resNotReplicated
	default:
		r = resError
	}
	m.count[op][r].Inc()
	m.duration[op].Observe(d.Seconds())
}
