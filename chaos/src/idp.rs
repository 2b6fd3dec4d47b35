//! The identity provider's calls, recorded like admin calls: an OpenID Connect back-channel
//! logout of a user's IdP session (`idp_logout`), and a Shared Signals SET that ends one
//! user's IdP session and logs another out in one signal (`idp_set`). Both go to a node's
//! client listener (through its client proxy), signed with the tenant's HS256 key.

use serde_json::{Value, json};
use tether_tests::idp::{BACKCHANNEL_EVENT, CAEP, LOGOUT_AUD, SSF_AUD, sign_hs_typed};
use tether_tests::tokens::{ISSUER, TENANT, now};

use crate::admin::{Admin, Outcome};
use crate::client::idp_sid;

/// The `[[tenants]]` lines that switch the chaos tenant's IdP signals on (the SSF
/// transmitter signs with the tenant's own key).
pub fn tenant_toml() -> String {
    format!(
        "[tenants.idp]\nbackchannel_logout_audiences = [\"{LOGOUT_AUD}\"]\nsid_ttl_secs = 3600\n\
         [tenants.idp.ssf]\nissuer = \"{ISSUER}\"\naudience = \"{SSF_AUD}\"\n"
    )
}

fn jti() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn iss_sub(user: &str) -> Value {
    json!({"format": "iss_sub", "iss": ISSUER, "sub": user})
}

impl Admin {
    /// Back-channel logout of `user`'s IdP session, posted to `client_addr`.
    pub async fn idp_logout(&self, node: u64, client_addr: &str, user: &str) -> Outcome {
        let claims = json!({
            "iss": ISSUER, "aud": LOGOUT_AUD, "iat": now(), "exp": now() + 300, "jti": jti(),
            "sid": idp_sid(user), "events": {BACKCHANNEL_EVENT: {}},
        });
        let token = sign_hs_typed("logout+jwt", &claims);
        let req = self
            .http()
            .post(format!(
                "http://{client_addr}/v1/idp/{TENANT}/backchannel-logout"
            ))
            .form(&[("logout_token", token)]);
        self.send(node, "idp_logout", user.to_owned(), None, req)
            .await
    }

    /// One SET: CAEP session-revoked for `ended`'s IdP session and credential-change for
    /// `out` (a user logout), posted to `client_addr`.
    pub async fn idp_set(&self, node: u64, client_addr: &str, ended: &str, out: &str) -> Outcome {
        let claims = json!({
            "iss": ISSUER, "aud": SSF_AUD, "iat": now(), "jti": jti(),
            "events": {
                format!("{CAEP}session-revoked"): {"subject": {"format": "complex",
                    "user": iss_sub(ended),
                    "session": {"format": "opaque", "id": idp_sid(ended)}}},
                format!("{CAEP}credential-change"): {"subject": iss_sub(out)},
            },
        });
        let req = self
            .http()
            .post(format!("http://{client_addr}/v1/idp/{TENANT}/ssf"))
            .header("content-type", "application/secevent+jwt")
            .body(sign_hs_typed("secevent+jwt", &claims));
        self.send(node, "idp_set", format!("{ended},{out}"), None, req)
            .await
    }
}
