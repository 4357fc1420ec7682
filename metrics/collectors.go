package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RedisPoolStats is a snapshot of the Redis connection pool (what go-redis
// reports), passed in by a function so that this package need not know
// the Redis client.
type RedisPoolStats struct {
	Hits, Misses, Timeouts            uint64
	TotalConns, IdleConns, StaleConns uint64
}

// RedisPoolCollector exposes the pool statistics read at each scrape.
type RedisPoolCollector struct {
	stats                  func() RedisPoolStats
	hits, misses, timeouts *prometheus.Desc
	conns                  *prometheus.Desc
}

// NewRedisPoolCollector returns a collector of the Redis pool statistics.
func NewRedisPoolCollector(stats func() RedisPoolStats) *RedisPoolCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "redis_pool", name), help, labels, nil)
	}
	return &RedisPoolCollector{
		stats:    stats,
		hits:     d("hits_total", "Times a free connection was found in the Redis pool."),
		misses:   d("misses_total", "Times no free connection was found in the Redis pool."),
		timeouts: d("timeouts_total", "Times waiting for a Redis pool connection timed out."),
		conns:    d("connections", "Redis pool connections by state.", "state"),
	}
}

// Describe implements prometheus.Collector.
func (c *RedisPoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.hits
	ch <- c.misses
	ch <- c.timeouts
	ch <- c.conns
}

// Collect implements prometheus.Collector.
func (c *RedisPoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(c.timeouts, prometheus.CounterValue, float64(s.Timeouts))
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.TotalConns), "total")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.IdleConns), "idle")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.StaleConns), "stale")
}

// Certificate describes one trusted token-signing certificate.
type Certificate struct {
	Thumbprint string // SHA-1, base64url (x5t): bounded by the trust set
	Subject    string
	NotAfter   time.Time
}

// CertificateCollector exposes, per trusted token certificate, its NotAfter
// as a Unix time, so an alert can fire before it expires (a forgotten Key
// Vault renewal stops all playback).
type CertificateCollector struct {
	certs    func() []Certificate
	notAfter *prometheus.Desc
}

// NewCertificateCollector returns a collector reading certs at each scrape.
func NewCertificateCollector(certs func() []Certificate) *CertificateCollector {
	return &CertificateCollector{certs: certs, notAfter: prometheus.NewDesc(
		prometheus.BuildFQName(Namespace, "token_certificate", "not_after_seconds"),
		"NotAfter of each trusted token-signing certificate, as a Unix time.", []string{"thumbprint", "subject"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *CertificateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.notAfter }

// Collect implements prometheus.Collector.
func (c *CertificateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, cert := range c.certs() {
		ch <- prometheus.MustNewConstMetric(c.notAfter, prometheus.GaugeValue, float64(cert.NotAfter.Unix()), cert.Thumbprint, cert.Subject)
	}
}

// TLSCertificate describes one certificate a listener serves.
type TLSCertificate struct {
	Plane    string // delivery or admin
	Name     string // its first DNS name or address: bounded by the configuration
	NotAfter time.Time
}

// TLSCertificateCollector exposes, per certificate the listeners serve, its
// NotAfter as a Unix time, so an alert can fire before it expires (a
// certificate file that was never renewed, an ACME renewal that keeps
// failing).
type TLSCertificateCollector struct {
	certs    func() []TLSCertificate
	notAfter *prometheus.Desc
}

// NewTLSCertificateCollector returns a collector reading certs at each
// scrape.
func NewTLSCertificateCollector(certs func() []TLSCertificate) *TLSCertificateCollector {
	return &TLSCertificateCollector{certs: certs, notAfter: prometheus.NewDesc(
		prometheus.BuildFQName(Namespace, "tls_certificate", "not_after_seconds"),
		"NotAfter of each certificate a listener serves, as a Unix time.", []string{"plane", "name"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *TLSCertificateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.notAfter }

// Collect implements prometheus.Collector.
func (c *TLSCertificateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, cert := range c.certs() {
		ch <- prometheus.MustNewConstMetric(c.notAfter, prometheus.GaugeValue, float64(cert.NotAfter.Unix()), cert.Plane, cert.Name)
	}
}
