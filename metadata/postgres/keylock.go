package postgres

import (
	"context"
	"fmt"
	"time"
)

// TryLock takes the session advisory lock named key on a connection of
// its own, so that work of which one replica at a time should do (a
// cache's scheduled sync) is done by one of them. ok is false, with no
// error, when another session holds it. The lock dies with the connection
// if the process does.
func (s *Store) TryLock(ctx context.Context, key string) (release func(), ok bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("metadata/postgres: lock %s: %w", key, err)
	}
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", "berth:"+key).Scan(&ok); err != nil {
		conn.Release()
		return nil, false, fmt.Errorf("metadata/postgres: lock %s: %w", key, err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", "berth:"+key); err != nil {
			_ = conn.Conn().Close(ctx)
		}
		conn.Release()
	}, true, nil
}
