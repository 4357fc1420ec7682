package delivery

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/metrics"
)

type deliveryMetrics struct {
	http      *metrics.HTTP
	verified  *prometheus.CounterVec
	delivered prometheus.Counter
	ok        prometheus.Counter
	reasons   map[auth.Reason]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *deliveryMetrics {
	m := &deliveryMetrics{
		http: metrics.NewHTTP(prometheus.WrapRegistererWith(prometheus.Labels{"plane": "delivery"}, reg)),
		verified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "token", Name: "verifications_total",
			Help: "Token verifications by result: ok, or the refusal reason.",
		}, []string{"result"}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "keys_delivered_total",
			Help: "Content keys delivered, by delivery type.", ConstLabels: prometheus.Labels{"type": "envelope"},
		}),
		reasons: map[auth.Reason]prometheus.Counter{},
	}
	reg.MustRegister(m.verified, m.delivered)
	// Every series exists from the start, so rates and alerts work at once.
	m.ok = m.verified.WithLabelValues("ok")
	for _, r := range auth.Reasons() {
		m.reasons[r] = m.verified.WithLabelValues(string(r))
	}
	return m
}

func (m *deliveryMetrics) verification(err error) {
	if err == nil {
		m.ok.Inc()
		return
	}
	var ae *auth.Error
	if errors.As(err, &ae) {
		if c, ok := m.reasons[ae.Reason]; ok {
			c.Inc()
		}
	}
}

const outcomeKey = "kd.outcome"

type outcome struct {
	reason string
	err    error
}

func setOutcome(c echo.Context, reason string, err error) {
	c.Set(outcomeKey, outcome{reason: reason, err: err})
}

// observe records RED metrics by route template and, when enabled, writes
// one access-log line per request. The logged URI never holds a token.
func (s *server) observe(accessLog bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			d := time.Since(start)
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			status := c.Response().Status
			s.metrics.http.Observe(route, status, d)
			if accessLog || status >= 500 {
				s.logRequest(c, route, status, d)
			}
			return nil
		}
	}
}

func (s *server) logRequest(c echo.Context, route string, status int, d time.Duration) {
	r := c.Request()
	attrs := []slog.Attr{
		slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("uri", redactedURI(r.URL)),
		slog.Int("status", status),
		slog.Duration("duration", d),
		slog.String("remote", c.RealIP()),
	}
	if o, ok := c.Get(outcomeKey).(outcome); ok {
		if o.reason != "" {
			attrs = append(attrs, slog.String("reason", o.reason))
		}
		if o.err != nil {
			attrs = append(attrs, slog.String("err", o.err.Error()))
		}
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
}

// redactedURI is the request URI with the value of every token parameter
// (any case) replaced, so tokens passed in the query never reach a log.
func redactedURI(u *url.URL) string {
	if u.RawQuery == "" {
		return u.EscapedPath()
	}
	parts := strings.Split(u.RawQuery, "&")
	for i, p := range parts {
		name, _, hasValue := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if strings.EqualFold(name, "token") || !hasValue && len(p) > 100 {
			parts[i] = "token=REDACTED"
		}
	}
	return u.EscapedPath() + "?" + strings.Join(parts, "&")
}

func (s *server) logPanic(c echo.Context, err error, stack []byte) error {
	s.log.Error("panic serving request", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err, "stack", string(stack))
	return err
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
