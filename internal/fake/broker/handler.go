package broker

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/orproxy/orproxy/internal/fake/admin"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/netaddr"
)

// Handler serves the broker contract and the admin API under /_fake/.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth/openrouter/start", s.start)
	mux.HandleFunc("POST /auth/openrouter/credential", s.credential)
	mux.HandleFunc("POST /credentials/rotate", s.rotate)
	s.adminRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.record(r, "")
		writeDetail(w, http.StatusNotFound, "Not Found")
	})
	return mux
}

// applyFault answers for the fault when one hits endpoint; it returns false
// when it has answered (or the client went away).
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, endpoint string) bool {
	f := s.currentFault()
	if !f.hits(endpoint) {
		return true
	}
	if f.Hang {
		<-r.Context().Done()
		return false
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return false
		}
	}
	status := f.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	switch {
	case f.Detail != nil:
		admin.WriteJSON(w, status, map[string]any{"detail": f.Detail})
		return false
	case f.ErrorMessage != "":
		admin.WriteJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": f.ErrorMessage}})
		return false
	case f.Garbage:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "<html>upstream proxy error")
		return false
	case f.RejectRefresh && endpoint == endpointRotate:
		writeDetail(w, http.StatusUnauthorized, "refresh token revoked")
		return false
	case f.Status != 0:
		// A status alone fails too, with FastAPI's default body, so a
		// fault never silently answers as a healthy broker would.
		writeDetail(w, status, http.StatusText(status))
		return false
	}
	return true
}

// faultFor is the current fault if it hits endpoint, else none.
func (s *Server) faultFor(endpoint string) Fault {
	if f := s.currentFault(); f.hits(endpoint) {
		return f
	}
	return Fault{}
}

// start plays the broker's login page with a user who approves at once: it
// redirects to return_to with a fresh code.
func (s *Server) start(w http.ResponseWriter, r *http.Request) {
	s.record(r, endpointStart)
	if !s.applyFault(w, r, endpointStart) {
		return
	}
	for _, h := range s.startHeaders {
		if r.Header.Get(h[0]) != h[1] {
			if s.opts.MissingHeadersStatus == http.StatusOK {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				fmt.Fprintf(w, "<!doctype html><title>Sign in</title><h1>Sign in</h1><p>Use a managed device (missing %s).</p>", html.EscapeString(h[0]))
				return
			}
			writeDetail(w, http.StatusForbidden, "missing or wrong identity header "+h[0])
			return
		}
	}
	returnTo := r.URL.Query().Get("return_to")
	u, err := url.Parse(returnTo)
	if returnTo == "" || err != nil || u.Scheme != "http" || !netaddr.IsLoopbackHost(u.Hostname()) {
		writeDetail(w, http.StatusBadRequest, "return_to must be an http URL on this machine (127.0.0.1 or localhost)")
		return
	}
	if s.opts.ExactReturnTo && (u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Path != "/callback") {
		writeDetail(w, http.StatusBadRequest, ReturnToRefusal)
		return
	}
	code := s.newCode()
	var target string
	if s.opts.NaiveAppend {
		target = returnTo + "?code=" + url.QueryEscape(code)
	} else {
		q := u.Query()
		q.Set("code", code)
		u.RawQuery = q.Encode()
		target = u.String()
	}
	http.Redirect(w, r, target, http.StatusFound)
}

func (s *Server) credential(w http.ResponseWriter, r *http.Request) {
	s.record(r, endpointExchange)
	if !s.applyFault(w, r, endpointExchange) {
		return
	}
	var in struct {
		Code string `json:"code"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err := json.Unmarshal(body, &in); err != nil || in.Code == "" {
		writeDetail(w, http.StatusUnprocessableEntity, "body must be {\"code\": \"…\"}")
		return
	}
	if !s.takeCode(in.Code) {
		writeDetail(w, http.StatusBadRequest, "invalid or expired code")
		return
	}
	s.rotateMu.Lock()
	defer s.rotateMu.Unlock()
	info, err := s.issue(r.Context())
	if err == nil && s.faultFor(endpointExchange).DeadKeys {
		err = s.kill(r.Context(), &info)
	}
	if err != nil {
		writeDetail(w, http.StatusBadGateway, err.Error())
		return
	}
	sess := &session{refresh: "rt-" + randomHex(24), key: info}
	s.mu.Lock()
	s.sessions[sess.refresh] = sess
	s.mu.Unlock()
	admin.WriteJSON(w, http.StatusOK, answer(info, sess.refresh))
}

func (s *Server) rotate(w http.ResponseWriter, r *http.Request) {
	s.record(r, endpointRotate)
	if !s.applyFault(w, r, endpointRotate) {
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		writeDetail(w, http.StatusUnauthorized, "missing bearer refresh token")
		return
	}
	s.rotateMu.Lock()
	defer s.rotateMu.Unlock()
	s.mu.Lock()
	sess := s.sessions[token]
	s.mu.Unlock()
	if sess == nil {
		writeDetail(w, http.StatusUnauthorized, "invalid refresh token")
		return
	}
	fault := s.faultFor(endpointRotate)
	if fault.SameKey {
		admin.WriteJSON(w, http.StatusOK, answer(sess.key, sess.refresh))
		return
	}
	if err := s.opts.Issuer.Revoke(r.Context(), sess.key.Key); err != nil {
		writeDetail(w, http.StatusBadGateway, "revoke old key: "+err.Error())
		return
	}
	info, err := s.issue(r.Context())
	if err == nil && fault.DeadKeys {
		err = s.kill(r.Context(), &info)
	}
	if err != nil {
		writeDetail(w, http.StatusBadGateway, err.Error())
		return
	}
	sess.key = info
	if s.opts.RotateRefreshTokens && !s.opts.OmitRotatedRefreshToken {
		s.mu.Lock()
		delete(s.sessions, sess.refresh)
		sess.refresh = "rt-" + randomHex(24)
		s.sessions[sess.refresh] = sess
		s.mu.Unlock()
	}
	out := answer(info, sess.refresh)
	if s.opts.OmitRotatedRefreshToken {
		delete(out, "broker_refresh_token")
	}
	admin.WriteJSON(w, http.StatusOK, out)
}

func answer(info openrouter.KeyInfo, refresh string) map[string]any {
	var expires any
	if info.ExpiresAt != nil {
		expires = info.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return map[string]any{
		"openrouter_api_key":        info.Key,
		"broker_refresh_token":      refresh,
		"openrouter_key_hash":       info.Hash,
		"openrouter_key_label":      info.Label,
		"openrouter_key_expires_at": expires,
	}
}

// ReturnToRefusal is the detail of the start page's 400 for a return_to
// that Options.ExactReturnTo does not take.
const ReturnToRefusal = "return_to is not a registered redirect address: it must be exactly http://127.0.0.1:PORT/callback, with no query"

// writeDetail writes the FastAPI error shape the real broker uses.
func writeDetail(w http.ResponseWriter, status int, detail string) {
	admin.WriteJSON(w, status, map[string]any{"detail": detail})
}
