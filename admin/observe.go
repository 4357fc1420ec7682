package admin

import (
	"log/slog"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/metrics"
)

type adminMetrics struct {
	http          *metrics.HTTP
	operations    *prometheus.CounterVec
	auditFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *adminMetrics {
	m := &adminMetrics{
		http: metrics.NewHTTP(prometheus.WrapRegistererWith(prometheus.Labels{"plane": "admin"}, reg)),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "admin", Name: "operations_total",
			Help: "Admin operations by operation and result (ok, conflict, not_found, invalid, forbidden, unauthorized, unavailable, error).",
		}, []string{"operation", "result"}),
	}
	m.auditFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: "audit", Name: "write_failures_total",
		Help: "Audit records that could not be written (the admin writes they were for were refused).",
	})
	reg.MustRegister(m.operations, m.auditFailures)
	// The ok series exist from the start, so rates work at once.
	for _, op := range operations {
		m.operations.WithLabelValues(op.name, resultOK)
	}
	m.operations.WithLabelValues(opAuthenticate, resultUnauthorized)
	return m
}

func (m *adminMetrics) operation(name, result string) {
	m.operations.WithLabelValues(name, result).Inc()
}

// Context keys for request-scoped values.
const (
	outcomeKey    = "kd.outcome"
	credentialKey = "kd.credential"
	operationKey  = "kd.operation"
)

type outcome struct {
	reason string
	err    error
}

func setOutcome(c echo.Context, reason string, err error) {
	c.Set(outcomeKey, outcome{reason: reason, err: err})
}

// observe records RED metrics by route template and logs every /api/
// request (admin actions are rare and worth a line each) and every 5xx.
func (s *server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		d := time.Since(start)
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		s.metrics.http.Observe(route, status, d)
		if strings.HasPrefix(c.Request().URL.Path, "/api/") || status >= 500 {
			s.logRequest(c, route, status, d)
		}
		return nil
	}
}

func (s *server) logRequest(c echo.Context, route string, status int, d time.Duration) {
	r := c.Request()
	req := httpedge.Request{ID: c.Response().Header().Get(echo.HeaderXRequestID), Method: r.Method, Route: route, URL: r.URL,
		Status: status, Duration: d, Remote: c.RealIP()}
	var extra []slog.Attr
	if cr, ok := c.Get(credentialKey).(credential); ok {
		extra = append(extra, slog.String("credential", cr.name))
	}
	if op, ok := c.Get(operationKey).(operation); ok {
		extra = append(extra, slog.String("operation", op.name))
	}
	if o, ok := c.Get(outcomeKey).(outcome); ok {
		req.Reason, req.Err = o.reason, o.err
	}
	httpedge.Log(r.Context(), s.log, "admin request", req, extra...)
}

func (s *server) logPanic(c echo.Context, err error, stack []byte) error {
	s.log.Error("panic serving admin request", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err, "stack", string(stack))
	return err
}

// requestID sets X-Request-ID: the caller's, when it is a short plain token
// (so a client such as kdctl can correlate), or a new random one.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderXRequestID, httpedge.RequestID(c.Request().Header.Get(echo.HeaderXRequestID)))
		return next(c)
	}
}
