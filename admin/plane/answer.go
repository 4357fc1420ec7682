package plane

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// Answer is what an operation answers, written by the plane once the
// outcome is audited. The zero Answer is not valid; build one with JSON,
// Blob or NoContent.
type Answer struct {
	status      int
	json        any    // written as JSON when blob is nil
	blob        []byte // written as it is
	contentType string
	header      [][2]string
	wipe        bool
}

// JSON answers v as JSON (application/json unless WithType says otherwise).
func JSON(status int, v any) Answer { return Answer{status: status, json: v} }

// Blob answers b with the given Content-Type.
func Blob(status int, contentType string, b []byte) Answer {
	return Answer{status: status, blob: b, contentType: contentType}
}

// NoContent answers status with no body (204).
func NoContent(status int) Answer { return Answer{status: status} }

// With adds a response header.
func (a Answer) With(name, value string) Answer {
	a.header = append(a.header, [2]string{name, value})
	return a
}

// WithType sets the Content-Type of a JSON answer.
func (a Answer) WithType(contentType string) Answer {
	a.contentType = contentType
	return a
}

// Wiped clears a Blob's bytes once they are written (or when the answer is
// not written): for answers that carry key material.
func (a Answer) Wiped() Answer {
	a.wipe = true
	return a
}

func (a Answer) discard() {
	if a.wipe {
		clear(a.blob)
	}
}

func (a Answer) write(c echo.Context) error {
	defer a.discard()
	h := c.Response().Header()
	for _, kv := range a.header {
		h.Set(kv[0], kv[1])
	}
	switch {
	case a.status == 0:
		return echo.NewHTTPError(http.StatusInternalServerError, "plane: an operation answered nothing")
	case a.blob != nil:
		return c.Blob(a.status, a.contentType, a.blob)
	case a.json != nil:
		if a.contentType != "" {
			h.Set(echo.HeaderContentType, a.contentType)
		}
		return c.JSON(a.status, a.json)
	}
	return c.NoContent(a.status)
}
