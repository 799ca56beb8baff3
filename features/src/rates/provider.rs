//! Rate providers behind one trait: `fixer` (fixer.io, needs a key) and `frankfurter`
//! (ECB rates, no key). Every failure is a [`ProviderError`] whose message names the
//! provider and the cause, never the URL: fixer's key travels in the query string.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use futures::future::BoxFuture;
use serde::Deserialize;

use super::{BASE, ProviderChoice, RatesConfig};

/// One day of rates as a provider answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct DayRates {
    /// The provider's own date (earlier than the day asked for on holidays).
    pub date: NaiveDate,
    /// The base currency.
    pub base: String,
    /// Units of each currency per one base.
    pub rates: BTreeMap<String, f64>,
}

/// Why a provider gave no rates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer within the timeout.
    #[error("{provider} did not answer within {ms} ms")]
    Timeout {
        /// Which provider.
        provider: &'static str,
        /// The timeout.
        ms: u64,
    },
    /// The connection failed.
    #[error("{provider} unreachable: {reason}")]
    Unreachable {
        /// Which provider.
        provider: &'static str,
        /// The transport error, without the URL.
        reason: String,
    },
    /// An HTTP status other than 200.
    #[error("{provider} answered HTTP {status}")]
    Status {
        /// Which provider.
        provider: &'static str,
        /// The status code.
        status: u16,
    },
    /// The provider said no (fixer's `success: false`).
    #[error("{provider} refused: {reason}")]
    Refused {
        /// Which provider.
        provider: &'static str,
        /// Its error code and text.
        reason: String,
    },
    /// The body is not what the provider documents.
    #[error("{provider} answered a malformed body: {reason}")]
    Malformed {
        /// Which provider.
        provider: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The configuration cannot work (fixer chosen without a key).
    #[error("{0}")]
    Config(String),
}

/// A source of daily rates against [`BASE`].
pub trait RatesProvider: Send + Sync + fmt::Debug {
    /// The provider's name, for logs and job results.
    fn name(&self) -> &'static str;

    /// The rates of `date` (or of the business day before it, on holidays).
    fn fetch(&self, date: NaiveDate) -> BoxFuture<'_, Result<DayRates, ProviderError>>;
}

/// The provider `config` chooses.
pub fn from_config(config: &RatesConfig) -> Arc<dyn RatesProvider> {
    let client = engine::http::client(config.timeout());
    let fixer = |key: Option<super::Secret>| Fixer {
        client: client.clone(),
        url: config.fixer_url.trim_end_matches('/').to_owned(),
        key,
        timeout_ms: config.timeout_ms,
    };
    // An empty FIXER_KEY (compose passes one through) is no key.
    let key = config.fixer_key.clone().filter(|k| !k.expose().is_empty());
    match (config.provider, key) {
        (ProviderChoice::Fixer, key) => Arc::new(fixer(key)),
        (ProviderChoice::Auto, Some(key)) => Arc::new(fixer(Some(key))),
        (ProviderChoice::Auto | ProviderChoice::Frankfurter, _) => Arc::new(Frankfurter {
            client,
            url: config.frankfurter_url.trim_end_matches('/').to_owned(),
            timeout_ms: config.timeout_ms,
        }),
    }
}

/// fixer.io: `GET {url}/{date}?access_key=KEY&base=EUR` →
/// `{success, date, base, rates}`; `success: false` carries `error{code, type, info}`.
#[derive(Debug, Clone)]
pub struct Fixer {
    client: reqwest::Client,
    url: String,
    key: Option<super::Secret>,
    timeout_ms: u64,
}

#[derive(Deserialize)]
struct FixerBody {
    success: bool,
    date: Option<String>,
    base: Option<String>,
    rates: Option<BTreeMap<String, f64>>,
    error: Option<FixerError>,
}

#[derive(Deserialize)]
struct FixerError {
    code: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    info: Option<String>,
}

impl RatesProvider for Fixer {
    fn name(&self) -> &'static str {
        "fixer"
    }

    fn fetch(&self, date: NaiveDate) -> BoxFuture<'_, Result<DayRates, ProviderError>> {
        Box::pin(async move {
            let Some(key) = &self.key else {
                return Err(ProviderError::Config(
                    "RATES_PROVIDER=fixer needs FIXER_KEY".to_owned(),
                ));
            };
            let request = self
                .client
                .get(format!("{}/{date}", self.url))
                .query(&[("access_key", key.expose()), ("base", BASE)]);
            let text = send(request, self.name(), self.timeout_ms).await?;
            let body: FixerBody = parse(&text, self.name())?;
            if !body.success {
                let reason = match body.error {
                    Some(e) => format!(
                        "error {} {}: {}",
                        e.code.map_or_else(|| "?".to_owned(), |c| c.to_string()),
                        e.kind.unwrap_or_default(),
                        e.info.unwrap_or_default()
                    )
                    .trim_end_matches([' ', ':'])
                    .to_owned(),
                    None => "success is false".to_owned(),
                };
                return Err(ProviderError::Refused {
                    provider: self.name(),
                    reason: scrubbed(&reason, Some(key.expose())),
                });
            }
            check(self.name(), date, body.date, body.base, body.rates)
        })
    }
}

/// frankfurter: `GET {url}/{date}?from=EUR` → `{amount, base, date, rates}`.
#[derive(Debug, Clone)]
pub struct Frankfurter {
    client: reqwest::Client,
    url: String,
    timeout_ms: u64,
}

#[derive(Deserialize)]
struct FrankfurterBody {
    date: Option<String>,
    base: Option<String>,
    rates: Option<BTreeMap<String, f64>>,
}

impl RatesProvider for Frankfurter {
    fn name(&self) -> &'static str {
        "frankfurter"
    }

    fn fetch(&self, date: NaiveDate) -> BoxFuture<'_, Result<DayRates, ProviderError>> {
        Box::pin(async move {
            let request = self
                .client
                .get(format!("{}/{date}", self.url))
                .query(&[("from", BASE)]);
            let text = send(request, self.name(), self.timeout_ms).await?;
            let body: FrankfurterBody = parse(&text, self.name())?;
            check(self.name(), date, body.date, body.base, body.rates)
        })
    }
}

/// Sends and reads the body of a 200; every failure without the URL.
async fn send(
    request: reqwest::RequestBuilder,
    provider: &'static str,
    timeout_ms: u64,
) -> Result<String, ProviderError> {
    let transport = |err: reqwest::Error| {
        if err.is_timeout() {
            ProviderError::Timeout {
                provider,
                ms: timeout_ms,
            }
        } else {
            ProviderError::Unreachable {
                provider,
                reason: err.without_url().to_string(),
            }
        }
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(ProviderError::Status {
            provider,
            status: status.as_u16(),
        });
    }
    response.text().await.map_err(transport)
}

fn parse<T: serde::de::DeserializeOwned>(
    text: &str,
    provider: &'static str,
) -> Result<T, ProviderError> {
    serde_json::from_str(text).map_err(|e| ProviderError::Malformed {
        provider,
        reason: e.to_string(),
    })
}

/// Checks an answer for `asked`: a date no later than asked, the base asked for, and
/// at least one rate, every one a three-letter code with a positive finite value.
fn check(
    provider: &'static str,
    asked: NaiveDate,
    date: Option<String>,
    base: Option<String>,
    rates: Option<BTreeMap<String, f64>>,
) -> Result<DayRates, ProviderError> {
    let malformed = |reason: String| ProviderError::Malformed { provider, reason };
    let date = date.ok_or_else(|| malformed("no date".to_owned()))?;
    let date: NaiveDate = date.parse().map_err(|_| {
        malformed(format!(
            "date '{}' is not YYYY-MM-DD",
            scrubbed(&date, None)
        ))
    })?;
    if date > asked {
        return Err(malformed(format!("asked for {asked}, answered {date}")));
    }
    let base = base.ok_or_else(|| malformed("no base".to_owned()))?;
    if base != BASE {
        return Err(malformed(format!(
            "asked for base {BASE}, answered {}",
            scrubbed(&base, None)
        )));
    }
    let mut rates = rates.ok_or_else(|| malformed("no rates".to_owned()))?;
    // The base against itself is 1 by definition; fixer lists it, frankfurter not.
    rates.remove(BASE);
    if rates.is_empty() {
        return Err(malformed("no rates".to_owned()));
    }
    if let Some((code, rate)) = rates
        .iter()
        .find(|(code, rate)| !is_currency_code(code) || !rate.is_finite() || **rate <= 0.0)
    {
        return Err(malformed(format!("rate {}: {rate}", scrubbed(code, None))));
    }
    Ok(DayRates { date, base, rates })
}

/// Most characters of a provider's own text an error carries.
const UPSTREAM_TEXT_MAX: usize = 200;

/// A provider's own text as an error may keep it (job errors are readable by anyone
/// who can read `/jobs`): `key` and any `access_key` value masked, since a provider
/// may echo the request it was sent, and cut to [`UPSTREAM_TEXT_MAX`] characters.
fn scrubbed(text: &str, key: Option<&str>) -> String {
    const MASK: &str = "***";
    let mut text = match key {
        Some(key) if !key.is_empty() => text.replace(key, MASK),
        _ => text.to_owned(),
    };
    // `access_key=VALUE`, `access_key": "VALUE"` and the like: mask VALUE. (Lowering
    // ASCII letters keeps byte offsets.)
    let name = "access_key";
    let mut from = 0;
    while let Some(found) = text[from..].to_ascii_lowercase().find(name) {
        let at = from + found;
        let after_name = at + name.len();
        // `invalid_access_key` (fixer's error type) is another word; and a name with no
        // `=` or `:` after it assigns nothing.
        let part_of_word = text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let value_start = text[after_name..]
            .find(|c: char| !matches!(c, '=' | ':' | '"' | '\'' | ' '))
            .map_or(text.len(), |i| after_name + i);
        if part_of_word || !text[after_name..value_start].contains(['=', ':']) {
            from = after_name;
            continue;
        }
        let value_end = text[value_start..]
            .find(|c: char| matches!(c, '&' | '"' | '\'' | ',' | '}' | ']') || c.is_whitespace())
            .map_or(text.len(), |i| value_start + i);
        from = if value_end > value_start {
            text.replace_range(value_start..value_end, MASK);
            value_start + MASK.len()
        } else {
            value_end
        };
    }
    let mut chars = text.chars();
    let mut kept: String = chars.by_ref().take(UPSTREAM_TEXT_MAX).collect();
    if chars.next().is_some() {
        kept.push('…');
    }
    kept
}

/// Three ASCII capital letters, e.g. `USD`.
pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::scrubbed;

    #[test]
    fn provider_text_loses_keys_and_length() {
        let echoed = "invalid_access_key: You have not supplied a valid key \
                      (GET /2026-11-30?access_key=s3cr3t&base=EUR, {\"access_key\": \"s3cr3t\"})";
        let kept = scrubbed(echoed, Some("s3cr3t"));
        assert!(!kept.contains("s3cr3t"), "{kept}");
        assert!(kept.contains("access_key=***&base=EUR"), "{kept}");
        // A value the key is not (another account's, say) is masked by its name.
        let other = scrubbed("ACCESS_KEY=abc123 and access_key: 'xyz'", None);
        assert_eq!(other, "ACCESS_KEY=*** and access_key: '***'");
        assert_eq!(scrubbed("access_key", None), "access_key");
        assert_eq!(
            scrubbed("invalid_access_key: You have not supplied a key", None),
            "invalid_access_key: You have not supplied a key"
        );
        let long = scrubbed(&"é".repeat(1_000), None);
        assert_eq!(long.chars().count(), 201);
        assert!(long.ends_with('…'));
    }
}
