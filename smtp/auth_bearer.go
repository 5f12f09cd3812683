package smtp

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// maxBearerToken bounds the token a probe sends: with its SASL framing and
// base64, the AUTH command stays within the 12288 octets RFC 4954 (section
// 4) allows a line carrying an initial response, so the probe never needs a
// second form of the exchange.
const maxBearerToken = 8 << 10

// maxChallengeShown bounds the decoded error challenge quoted in the
// transcript and the error.
const maxChallengeShown = 256

// bearer authenticates with an OAuth 2.0 bearer token: XOAUTH2 (Google's
// and Microsoft's) or OAUTHBEARER (RFC 7628). The token comes from
// Auth.Token now, once the mechanism is known to be offered; without one the
// probe fails with ReasonToken and AUTH is not sent. The token, the SASL
// response and its base64 are secrets. A refused token gets an error
// challenge (334 with base64 JSON) that the client must answer before the
// final reply comes: with an empty line for XOAUTH2, with the dummy ^A
// ("AQ==") for OAUTHBEARER (RFC 7628 section 3.2.3).
func (p *prober) bearer(mech string) (bool, *Error) {
	a := p.opts.Auth
	t := time.Now()
	token, note, err := a.Token(p.ctx)
	if err == nil {
		if note != "" {
			p.note("%s", note)
		}
		err = checkBearerToken(token)
	}
	// The wait for the token is part of the auth phase, reply or not.
	p.res.Phases = append(p.res.Phases, PhaseResult{Phase: PhaseAuth, Duration: time.Since(t)})
	if err != nil {
		return false, &Error{Phase: PhaseAuth, Reason: ReasonToken, Err: fmt.Errorf("AUTH not sent: %w", err)}
	}
	raw := bearerResponse(mech, a.Username, token)
	resp := base64.StdEncoding.EncodeToString([]byte(raw))
	p.secrets.add(token)
	p.secrets.add(raw)
	p.secrets.add(resp)
	r, cerr := p.cmd(PhaseAuth, "AUTH "+mech+" "+resp, "AUTH "+mech+" "+redacted)
	if cerr != nil {
		return false, cerr
	}
	var refusal string
	if r.Code == 334 {
		refusal = errorChallenge(r)
		p.note("the server refused the token: %s", refusal)
		dummy := "" // XOAUTH2: an empty response
		if mech == "OAUTHBEARER" {
			dummy = base64.StdEncoding.EncodeToString([]byte("\x01"))
		}
		if r, cerr = p.cmd(PhaseAuth, dummy, ""); cerr != nil {
			return false, cerr
		}
		if r.Code == 334 {
			_, _ = p.cmd(PhaseAuth, "*", "") // cancel the exchange (RFC 4954)
			return false, &Error{Phase: PhaseAuth, Reason: ReasonProtocol, Reply: r,
				Err: protocolErrorf("a second challenge after the answer to the error challenge")}
		}
	}
	done, ferr := p.check(PhaseAuth, r, 2)
	if ferr != nil && refusal != "" && ferr.Err == nil {
		ferr.Err = fmt.Errorf("the server refused the bearer token: %s", refusal)
	}
	return done, ferr
}

// bearerResponse is the client's SASL response: for XOAUTH2
// "user=U^Aauth=Bearer T^A^A"; for OAUTHBEARER the GS2 header naming the
// user, then "^Aauth=Bearer T^A^A" (RFC 7628 section 3.1).
func bearerResponse(mech, user, token string) string {
	if mech == "XOAUTH2" {
		return "user=" + user + "\x01auth=Bearer " + token + "\x01\x01"
	}
	return "n,a=" + saslName(user) + ",\x01auth=Bearer " + token + "\x01\x01"
}

// saslName escapes an authorization identity for a GS2 header (RFC 5801):
// "," as "=2C" and "=" as "=3D".
func saslName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// checkBearerToken refuses a token that would break the SASL response:
// empty, too long, or with bytes outside visible ASCII (RFC 6750's b64token
// is a subset). The error never quotes the token.
func checkBearerToken(token string) error {
	switch {
	case token == "":
		return errors.New("the token is empty")
	case len(token) > maxBearerToken:
		return fmt.Errorf("the token is %d bytes, more than the %d an AUTH line can carry", len(token), maxBearerToken)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("the token has a byte that is not visible ASCII (0x%02x at offset %d)", c, i)
		}
	}
	return nil
}

// errorChallenge is the text of a 334 error challenge, decoded from base64
// when it is base64 (RFC 7628's JSON: status, scope, openid-configuration),
// bounded; the caller's output makes it safe.
func errorChallenge(r *Reply) string {
	text := strings.TrimSpace(r.Text())
	if b, err := base64.StdEncoding.DecodeString(text); err == nil {
		text = string(b)
	}
	if text == "" {
		return "(an empty challenge)"
	}
	if len(text) > maxChallengeShown {
		text = cutUTF8(text, maxChallengeShown) + "..."
	}
	return text
}
