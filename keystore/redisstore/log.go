package redisstore

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// SetLogger sends go-redis' own messages (dial failures, pool events) to
// log at Warn, instead of unstructured lines on stderr. go-redis has only a
// process-wide logger, so this is process-wide too: call it once, from
// main. The messages carry addresses and error texts, never values or
// passwords.
func SetLogger(log *slog.Logger) {
	redis.SetLogger(slogAdapter{log})
}

type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Printf(ctx context.Context, format string, v ...any) {
	a.log.WarnContext(ctx, "redis client", "msg_detail", fmt.Sprintf(format, v...))
}
