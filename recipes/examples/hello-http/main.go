// Command hello-http is the example HTTP service of recipes/examples. It
// answers / with the GREETING environment variable and /healthz with 200,
// or with 503 while a file named by -unhealthy-file exists (relative to its
// working folder), so that a health check can be made to fail on purpose.
// It stops cleanly on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	unhealthy := flag.String("unhealthy-file", "unhealthy", "while this file exists, /healthz answers 503")
	flag.Parse()
	if err := run(*listen, newHandler(os.Getenv("GREETING"), *unhealthy)); err != nil {
		fmt.Fprintln(os.Stderr, "hello-http:", err)
		os.Exit(1)
	}
}

// run serves until SIGTERM or SIGINT, then shuts down within 5 seconds.
func run(addr string, h http.Handler) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	fmt.Println("hello-http: listening on", addr)
	select {
	case err := <-served:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", addr, err)
	}
	fmt.Println("hello-http: stopped")
	return nil
}

// newHandler answers / with greeting and /healthz with 200, or 503 while
// unhealthyFile exists.
func newHandler(greeting, unhealthyFile string) http.Handler {
	if greeting == "" {
		greeting = "hello"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, greeting)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if _, err := os.Stat(unhealthyFile); err == nil {
			http.Error(w, "unhealthy: "+unhealthyFile+" exists", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
