package plane

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"
)

func (p *Plane) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readiness is the body of GET /readyz.
type readiness struct {
	Status  string            `json:"status"`            // "ok" or "unavailable"
	Checks  map[string]string `json:"checks"`            // name → "ok" or the check's error text
	Details map[string]string `json:"details,omitempty"` // name → Check.Detail, when not empty
}

// readyz runs every check in parallel, each bounded by CheckTimeout, and
// answers 200 when all pass, else 503 with each failing check's error.
func (p *Plane) readyz(c echo.Context) error {
	ctx := c.Request().Context()
	results := make([]string, len(p.checks))
	var wg sync.WaitGroup
	for i, ch := range p.checks {
		wg.Go(func() { results[i] = runCheck(ctx, ch) })
	}
	wg.Wait()
	body := readiness{Status: "ok", Checks: make(map[string]string, len(p.checks))}
	status := http.StatusOK
	for i, ch := range p.checks {
		body.Checks[ch.Name] = results[i]
		if results[i] != "ok" {
			body.Status, status = "unavailable", http.StatusServiceUnavailable
		}
		if ch.Detail != nil {
			if d := ch.Detail(); d != "" {
				if body.Details == nil {
					body.Details = map[string]string{}
				}
				body.Details[ch.Name] = d
			}
		}
	}
	if status != http.StatusOK {
		c.Response().Header().Set(echo.HeaderRetryAfter, p.retry)
	}
	return c.JSON(status, body)
}

// runCheck runs ch with CheckTimeout. A check that ignores its context is
// abandoned at the deadline (its goroutine finishes on its own).
func runCheck(ctx context.Context, ch Check) string {
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- errors.New("check panicked")
			}
		}()
		done <- ch.Check(ctx)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out after " + CheckTimeout.String()
	}
	return err.Error()
}
