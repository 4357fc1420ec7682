package delivery

import (
	"errors"
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/httplog"
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
		slog.String("uri", httplog.RedactedURI(r.URL)),
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

func (s *server) logPanic(c echo.Context, err error, stack []byte) error {
	s.log.Error("panic serving request", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err, "stack", string(stack))
	return err
}

// requestID sets X-Request-ID on the response: the caller's when it is a
// plain short token, else a new one.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderXRequestID, httplog.RequestID(c.Request().Header.Get(echo.HeaderXRequestID)))
		return next(c)
	}
}
