package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/deploy"
)

// requestError is a problem with the request itself (a bad parameter, a body
// that is not JSON), found by a handler before anything is done.
type requestError struct {
	status int
	code   string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, code: api.CodeBadRequest, msg: fmt.Sprintf(format, args...)}
}

// problemLister is an error that carries every problem found (a manifest's
// validation errors).
type problemLister interface {
	Messages() []string
}

// classify translates an error into the local API's HTTP status and code.
// It is the one place where error categories become wire codes: handlers
// return wrapped errors and never pick a status themselves.
func classify(err error) (status int, code string) {
	var re *requestError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &re):
		return re.status, re.code
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, api.CodeTooLarge
	case errors.Is(err, deploy.ErrInvalid):
		var ve *deploy.ValidationError
		if errors.As(err, &ve) { // SIGNATURE_INVALID, DOWNLOAD_FAILED, … when that is why
			return http.StatusUnprocessableEntity, string(ve.Code())
		}
		return http.StatusUnprocessableEntity, api.CodeInvalid
	case errors.Is(err, supervisor.ErrNotFound), errors.Is(err, deploy.ErrNotFound),
		errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, api.CodeNotFound
	case errors.Is(err, deploy.ErrConflict), errors.Is(err, supervisor.ErrRemoved):
		return http.StatusConflict, api.CodeConflict
	case errors.Is(err, supervisor.ErrIllegal):
		return http.StatusConflict, api.CodeIllegal
	case errors.Is(err, supervisor.ErrStopped), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, api.CodeInternal
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, api.CodeInternal
	default:
		return http.StatusInternalServerError, api.CodeInternal
	}
}

// details lists every problem an error carries when there is more than one.
func details(err error) []string {
	var pl problemLister
	if errors.As(err, &pl) {
		return pl.Messages()
	}
	var multi interface{ Unwrap() []error }
	if errors.As(err, &multi) {
		var out []string
		for _, e := range multi.Unwrap() {
			out = append(out, e.Error())
		}
		if len(out) > 1 {
			return out
		}
	}
	if lines := strings.Split(strings.TrimSpace(err.Error()), "\n"); len(lines) > 1 {
		return lines
	}
	return nil
}

// writeError answers err as {"error", "code"[, "details"]}. Server-side
// failures (5xx) are logged here, once; client mistakes are not.
func writeError(w http.ResponseWriter, log *slog.Logger, r *http.Request, err error) {
	status, code := classify(err)
	body := api.Error{Message: err.Error(), Code: code, Details: details(err)}
	if status >= 500 {
		log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, body)
}

// writeJSON answers v as one JSON document.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", api.ContentJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to tell it
}
