package tally

import "time"

// InvitationTTL is how long an invitation can be accepted.
const InvitationTTL = 7 * 24 * time.Hour

// Invitation asks the holder of a token to join a tenant with a role. Only a
// hash of the token is stored; the token is shown once, to the inviter. It
// is accepted by a logged-in user whose email is Email; nobody becomes a
// member of a tenant without accepting one (or signing up where the tenant
// allows it, or an operator's direct add).
type Invitation struct {
	ID        int64     `json:"id"`
	TenantID  int64     `json:"-"`
	Email     string    `json:"email"`
	Role      Role      `json:"role"`
	TokenHash []byte    `json:"-"`
	InvitedBy string    `json:"invited_by"` // the inviter's audit actor
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// InviteInput is a new invitation. Email is normalized before it is
// stored; an empty Role means RoleMember.
type InviteInput struct {
	Email string
	Role  Role
}

// Validate checks the email and the role; EInvalid naming every field at
// fault.
func (in InviteInput) Validate() error {
	var fields []FieldError
	if msg := emailCheck(in.Email); msg != "" {
		fields = append(fields, FieldError{Field: "email", Message: msg})
	} else if !ValidEmail(NormalizeEmail(in.Email)) {
		fields = append(fields, FieldError{Field: "email", Message: "must be an email address"})
	}
	if in.Role != "" && !in.Role.Valid() {
		fields = append(fields, FieldError{Field: "role", Message: "must be owner, admin or member"})
	}
	if len(fields) > 0 {
		return Invalid("invalid invitation", fields...)
	}
	return nil
}
