package delivery

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/metrics"
)

type deliveryMetrics struct {
	http      *metrics.HTTP
	verified  *prometheus.CounterVec
	delivered prometheus.Counter // type="envelope", the hot path's child
	byType    *prometheus.CounterVec
	licenses  *prometheus.CounterVec
	ok        prometheus.Counter
	reasons   map[auth.Reason]prometheus.Counter
	limitedBy *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *deliveryMetrics {
	m := &deliveryMetrics{
		http: metrics.NewHTTP(prometheus.WrapRegistererWith(prometheus.Labels{"plane": "delivery"}, reg)),
		verified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "token", Name: "verifications_total",
			Help: "Token verifications by result: ok, or the refusal reason.",
		}, []string{"result"}),
		byType: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "keys_delivered_total",
			Help: "Content keys delivered, by delivery type: envelope (HLS AES-128 key), clearkey, or the DRM system whose issuer got them.",
		}, []string{"type"}),
		licenses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "licenses_total",
			Help: "License requests that passed the token and key checks, by system and result: issued, stub (no issuer configured), failed (the issuer erred).",
		}, []string{"system", "result"}),
		reasons: map[auth.Reason]prometheus.Counter{},
		limitedBy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "rate_limited_total",
			Help: "Requests refused with 429 rate_limited, by plane and by the budget spent (auth_failures, requests, admin_auth_failures).",
		}, []string{"limit"}),
	}
	reg.MustRegister(m.verified, m.byType, m.licenses)
	prometheus.WrapRegistererWith(prometheus.Labels{"plane": "delivery"}, reg).MustRegister(m.limitedBy)
	for _, l := range []string{"auth_failures", "requests"} {
		m.limitedBy.WithLabelValues(l)
	}
	m.delivered = m.byType.WithLabelValues("envelope")
	m.byType.WithLabelValues("clearkey")
	for _, result := range []string{"issued", "failed"} {
		m.licenses.WithLabelValues("clearkey", result)
	}
	for _, sys := range Systems() {
		for _, result := range []string{"issued", "stub", "failed"} {
			m.licenses.WithLabelValues(string(sys), result)
		}
	}
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

func (m *deliveryMetrics) limited(limit string) { m.limitedBy.WithLabelValues(limit).Inc() }

func (m *deliveryMetrics) keysDelivered(typ string, n int) {
	m.byType.WithLabelValues(typ).Add(float64(n))
}

func (m *deliveryMetrics) license(system, result string) {
	m.licenses.WithLabelValues(system, result).Inc()
}

const outcomeKey = "kd.outcome"

func setOutcome(c echo.Context, reason string, err error) {
	c.Set(outcomeKey, httpedge.Outcome{Reason: reason, Err: err})
}

// edge is the one middleware every request passes, errors and unknown
// routes included: it sets Cache-Control: no-store,
// turns a panic into a 500, renders errors, records RED metrics by route
// template and, when enabled, writes one access-log line (never a token).
// It is one middleware rather than five because echo builds the
// middleware chain anew for every request, one allocation per middleware.
func (s *server) edge(accessLog bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			httpedge.SetNoStore(c.Response().Header())
			err := s.allowRequest(c)
			if err == nil {
				err = s.safely(next, c)
			}
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

// safely runs next, turning a panic into an error (logged with its stack).
func (s *server) safely(next echo.HandlerFunc, c echo.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			err = fmt.Errorf("delivery: panic: %v", r)
			s.log.Error("panic serving request", "request_id", requestID(c),
				"err", err, "stack", string(debug.Stack()))
		}
	}()
	return next(c)
}

func (s *server) logRequest(c echo.Context, route string, status int, d time.Duration) {
	r := c.Request()
	req := httpedge.Request{ID: requestID(c), Method: r.Method, Route: route, URL: r.URL, Status: status, Duration: d, Remote: c.RealIP()}
	if o, ok := c.Get(outcomeKey).(httpedge.Outcome); ok {
		req.Reason, req.Err = o.Reason, o.Err
	}
	// The protocol (HTTP/1.1, HTTP/2.0) shows what players negotiate.
	httpedge.Log(r.Context(), s.log, "request", req, slog.String("proto", r.Proto))
}

// requestID returns the request's ID, setting X-Request-ID on the response
// the first time: the caller's when it is a plain short token, else a new
// one. Only answers that are logged or are errors get one, so a key served
// from the caches costs no ID (it is never logged unless --access-log).
func requestID(c echo.Context) string {
	h := c.Response().Header()
	if v := h[echo.HeaderXRequestID]; len(v) > 0 {
		return v[0]
	}
	rid := httpedge.RequestID(c.Request().Header.Get(echo.HeaderXRequestID))
	h[echo.HeaderXRequestID] = []string{rid}
	return rid
}
