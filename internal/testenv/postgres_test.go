package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// helperEnv makes the test binary, run by a test below, act as a helper
// process instead of running tests: its value says which.
const helperEnv = "TESTENV_POSTGRES_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "serve":
		serveHelper()
	case "missing":
		// Pretend PostgreSQL is not installed, then run the test that
		// asks for it (the caller picks it with -test.run).
		sharedPostgres = func() (*postgresServer, error) {
			return nil, fmt.Errorf("%w: simulated", errPostgresMissing)
		}
		os.Exit(m.Run())
	}
}

// serveHelper starts the server, prints a DSN and the server's directory,
// and waits to be killed.
func serveHelper() {
	srv, err := sharedPostgres()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(srv.dsn(superuser, "postgres"))
	fmt.Println(srv.dir)
	io.Copy(io.Discard, os.Stdin) // until the parent closes it or kills us
	os.Exit(0)
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestStartPostgres checks what a test gets: a database of its own, owned
// by a role that is not a superuser, in which it can create tables.
func TestStartPostgres(t *testing.T) {
	t.Parallel()
	conn := connect(t, StartPostgres(t))
	ctx := t.Context()
	var (
		db, owner, role string
		super           bool
	)
	err := conn.QueryRow(ctx, `SELECT current_database(), pg_get_userbyid(d.datdba), current_user, r.rolsuper
FROM pg_database AS d, pg_roles AS r
WHERE d.datname = current_database() AND r.rolname = current_user`).Scan(&db, &owner, &role, &super)
	if err != nil {
		t.Fatal(err)
	}
	if owner != role || super {
		t.Errorf("database %s is owned by %s; connected as %s (superuser: %v); want the owner, not a superuser", db, owner, role, super)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Errorf("CREATE TABLE: %v", err)
	}
}

// TestDatabasesIsolated gives parallel tests a database each and drops
// each when its test ends.
func TestDatabasesIsolated(t *testing.T) {
	t.Parallel()
	dsns := make(chan string, 2)
	t.Run("group", func(t *testing.T) {
		for i := range 2 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				dsn := StartPostgres(t)
				dsns <- dsn
				conn := connect(t, dsn)
				// The same table name in each: no conflict.
				if _, err := conn.Exec(t.Context(), "CREATE TABLE shared_name (x int)"); err != nil {
					t.Error(err)
				}
			})
		}
	})
	close(dsns)
	a, b := <-dsns, <-dsns
	if a == b {
		t.Fatalf("two tests got the same database: %s", a)
	}
	for _, dsn := range []string{a, b} {
		conn, err := pgx.Connect(t.Context(), dsn)
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			conn.Close(t.Context())
			t.Errorf("database %s still exists after its test", dsn)
		case !errors.As(err, &pgErr) || pgErr.Code != "3D000": // invalid_catalog_name
			t.Errorf("connect to a dropped database: %v, want database does not exist", err)
		}
	}
}

// TestServerStopsWithBinary kills a test binary that started a server, as a
// timeout or ^C would, and waits for the server to stop and its directory
// to go.
func TestServerStopsWithBinary(t *testing.T) {
	StartPostgres(t) // skips, or fails in CI, without PostgreSQL
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=serve")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var out []string
	for len(out) < 2 && lines.Scan() {
		out = append(out, lines.Text())
	}
	if len(out) < 2 || strings.HasPrefix(out[0], "error:") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper printed %q, want a DSN and a directory", out)
	}
	dsn, dir := out[0], out[1]
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the helper's server: %v", err)
	}
	conn.Close(ctx)

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// Poll with a deadline: the server's fast shutdown takes a moment.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		_, statErr := os.Stat(dir)
		conn, connErr := pgx.Connect(ctx, dsn)
		if connErr == nil {
			conn.Close(ctx)
		}
		if errors.Is(statErr, os.ErrNotExist) && connErr != nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after the helper was killed: directory %s: %v; connect: %v", dir, statErr, connErr)
		case <-tick.C:
		}
	}
}

// TestMissingPostgres runs a test that asks for PostgreSQL in a helper
// where it is missing: outside CI the test skips, in CI it fails.
func TestMissingPostgres(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ci       string
		wantFail bool
		wantOut  string
	}{
		{"", false, "SKIP: TestStartPostgres"},
		{"false", false, "SKIP: TestStartPostgres"},
		{"true", true, "PostgreSQL is required in CI"},
	} {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestStartPostgres$", "-test.v")
		env := []string{helperEnv + "=missing"}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "CI=") {
				env = append(env, kv)
			}
		}
		if c.ci != "" {
			env = append(env, "CI="+c.ci)
		}
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if failed := errors.As(err, &exit); failed != c.wantFail || (err != nil && !failed) {
			t.Errorf("CI=%q: helper exited with %v, want failure: %v\n%s", c.ci, err, c.wantFail, out)
		}
		if !strings.Contains(string(out), c.wantOut) {
			t.Errorf("CI=%q: helper output lacks %q:\n%s", c.ci, c.wantOut, out)
		}
	}
}

// TestPostgresServer stops and starts a private server and checks the
// data outlives the restart.
func TestPostgresServer(t *testing.T) {
	t.Parallel()
	p := StartPostgresServer(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, p.DSN())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	p.Stop()
	if c, err := pgx.Connect(ctx, p.DSN()); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	p.Start()
	conn, err = pgx.Connect(ctx, p.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Errorf("after a restart: %d, %v; want 42", v, err)
	}
}
