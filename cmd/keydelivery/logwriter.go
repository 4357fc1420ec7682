package main

import (
	"io"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/metrics"
)

// logWriter is where the server's log lines go (stderr). A line that cannot
// be written (a closed pipe, a full disk) is counted in
// keydelivery_log_write_failures_total and dropped: a failed log write
// never stops serving, and is never reported to the logger, which could
// only try to log it. A line cut off part-way is ended before the next one,
// so every line starts on a fresh line.
type logWriter struct {
	mu       sync.Mutex
	w        io.Writer
	partial  bool // the last line was cut off after some bytes
	failures prometheus.Counter
}

func newLogWriter(w io.Writer) *logWriter {
	return &logWriter{w: w, failures: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: "log", Name: "write_failures_total",
		Help: "Log lines that could not be written (a closed pipe, a full disk); they are dropped and serving goes on.",
	})}
}

// Write writes one line; it always reports success.
func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.partial {
		if _, err := l.w.Write([]byte{'\n'}); err != nil {
			l.failures.Inc()
			return len(p), nil
		}
		l.partial = false
	}
	n, err := l.w.Write(p)
	if err != nil || n < len(p) {
		l.failures.Inc()
		l.partial = n > 0 && n < len(p)
	}
	return len(p), nil
}
