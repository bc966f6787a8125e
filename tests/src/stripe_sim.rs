//! A Stripe simulator on a real socket: the slice of the Stripe API this service calls (customers, Checkout
//! sessions, customer portal sessions, subscriptions), with idempotency keys as Stripe honours them, and signed webhook
//! delivery (retried until the endpoint answers 2xx) that tests can hold back, reorder, duplicate and replay.
//!
//! Tests drive the customer's side through methods: [`StripeSim::complete_checkout`] pays a Checkout session (a new
//! active subscription), [`StripeSim::set_status`] moves a subscription (`past_due` after a failed payment, `active`
//! after a paid invoice), [`StripeSim::cancel_at_period_end`] and [`StripeSim::end_period`] cancel one. Each queues the
//! events Stripe would send; [`StripeSim::deliver`] sends the queue. The demo binary (`stripe-sim`) delivers on its
//! own and serves a "pay" page at each Checkout URL.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// The secret key the simulator accepts (`Authorization: Bearer ...`).
pub const SECRET_KEY: &str = "sk_test_simulator";
/// The webhook signing secret it signs with, unless told otherwise.
pub const WEBHOOK_SECRET: &str = "whsec_simulator";
pub const PRICE_PRO: &str = "price_pro_monthly";
pub const PRICE_ENTERPRISE: &str = "price_enterprise_monthly";
/// A month, for period ends.
const PERIOD: i64 = 30 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: String,
    pub email: String,
    pub name: String,
    pub metadata: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct CheckoutSession {
    pub id: String,
    pub customer: String,
    pub price: String,
    pub client_reference_id: Option<String>,
    pub success_url: String,
    pub subscription: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub customer: String,
    pub price: String,
    pub status: String,
    pub cancel_at_period_end: bool,
    pub current_period_end: i64,
    pub created: i64,
    pub metadata: HashMap<String, String>,
}

/// An event, as sent to the webhook endpoint.
#[derive(Debug, Clone)]
pub struct SentEvent {
    pub id: String,
    pub event_type: String,
    pub body: String,
}

/// Injected faults.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The next N API requests answer 500 (webhook delivery is not affected).
    pub unavailable: u32,
    /// Every API answer is sent this much later.
    pub delay: Option<Duration>,
}

/// A request made with an idempotency key: its parameters (sorted), and the status and body answered.
type Remembered = (Vec<(String, String)>, u16, Value);

#[derive(Default)]
struct State {
    next: u64,
    customers: HashMap<String, Customer>,
    sessions: HashMap<String, CheckoutSession>,
    subscriptions: HashMap<String, Subscription>,
    /// Idempotency key → the request it was first used with and the answer.
    idempotent: HashMap<String, Remembered>,
    /// Events created and not yet delivered, oldest first.
    outbox: Vec<SentEvent>,
    /// Every event created, by id.
    events: HashMap<String, SentEvent>,
    faults: Faults,
    /// API requests by `METHOD path`.
    requests: Vec<String>,
    customer_creations: u32,
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_{:06}", self.next)
    }

    fn subscription_json(&self, s: &Subscription) -> Value {
        let item = json!({
            "id": format!("si_{}", s.id), "object": "subscription_item", "created": s.created,
            "current_period_start": s.current_period_end - PERIOD, "current_period_end": s.current_period_end,
            "discounts": [], "metadata": {}, "subscription": s.id, "quantity": 1,
            "plan": { "id": s.price, "object": "plan", "active": true, "billing_scheme": "per_unit",
                      "created": s.created, "currency": "usd", "interval": "month", "interval_count": 1,
                      "livemode": false, "usage_type": "licensed" },
            "price": { "id": s.price, "object": "price", "active": true, "billing_scheme": "per_unit",
                       "created": s.created, "currency": "usd", "livemode": false, "metadata": {},
                       "product": format!("prod_{}", s.price), "type": "recurring" },
        });
        json!({
            "id": s.id, "object": "subscription", "automatic_tax": { "enabled": false },
            "billing_cycle_anchor": s.created, "billing_mode": { "type": "flexible" }, "billing_schedules": [],
            "cancel_at_period_end": s.cancel_at_period_end, "collection_method": "charge_automatically",
            "created": s.created, "currency": "usd", "customer": s.customer, "discounts": [],
            "invoice_settings": { "issuer": { "type": "self" } },
            "items": { "object": "list", "data": [item], "has_more": false,
                       "url": format!("/v1/subscription_items?subscription={}", s.id) },
            "livemode": false, "metadata": s.metadata, "start_date": s.created, "status": s.status,
            "canceled_at": if s.status == "canceled" { json!(now()) } else { Value::Null },
        })
    }

    fn session_json(&self, s: &CheckoutSession, base: &str) -> Value {
        json!({
            "id": s.id, "object": "checkout.session", "automatic_tax": { "enabled": false }, "created": now(),
            "custom_fields": [], "custom_text": {}, "expires_at": now() + 86_400, "livemode": false,
            "mode": "subscription", "payment_method_types": [], "shipping_options": [],
            "payment_status": if s.subscription.is_some() { "paid" } else { "unpaid" },
            "status": if s.subscription.is_some() { "complete" } else { "open" },
            "url": format!("{base}checkout/{}", s.id), "customer": s.customer,
            "client_reference_id": s.client_reference_id, "subscription": s.subscription, "metadata": {},
        })
    }

    /// Queues an event of `event_type` about `object`.
    fn emit(&mut self, event_type: &str, object: Value) -> String {
        let id = self.id("evt");
        let body = json!({
            "id": id, "object": "event", "api_version": "2026-09-30.endive", "created": now(), "livemode": false,
            "pending_webhooks": 1, "type": event_type, "data": { "object": object },
        })
        .to_string();
        let event = SentEvent { id: id.clone(), event_type: event_type.to_owned(), body };
        self.outbox.push(event.clone());
        self.events.insert(id.clone(), event);
        id
    }

    fn invoice_json(&mut self, s: &Subscription, paid: bool) -> Value {
        let id = self.id("in");
        json!({
            "id": id, "object": "invoice", "customer": s.customer, "status": if paid { "paid" } else { "open" },
            "parent": { "type": "subscription_details", "subscription_details": { "subscription": s.id } },
            "lines": { "object": "list", "data": [{ "pricing": { "price_details": { "price": s.price } } }] },
        })
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Stripe's error body.
fn error(status: u16, kind: &str, code: &str, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(json!({ "error": { "type": kind, "code": code, "message": message } }))
}

struct Shared {
    state: Mutex<State>,
    base_url: String,
    webhook: Mutex<Option<(String, String)>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running simulator.
pub struct StripeSim {
    /// Base URL of the API (`STRIPE_API_BASE`), ending in `/`.
    pub base_url: String,
    shared: Arc<Shared>,
    handle: ServerHandle,
    http: reqwest::Client,
}

impl StripeSim {
    /// Starts a simulator on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("cannot bind the Stripe simulator")
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        let mut bound = listener.local_addr()?;
        if bound.ip().is_unspecified() {
            bound.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let base_url = format!("http://{bound}/");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            base_url: base_url.clone(),
            webhook: Mutex::new(None),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/customers", web::post().to(create_customer))
                .route("/v1/checkout/sessions", web::post().to(create_session))
                .route("/v1/billing_portal/sessions", web::post().to(create_portal))
                .route("/v1/subscriptions/{id}", web::get().to(get_subscription))
                .route("/v1/subscriptions/{id}", web::delete().to(cancel_subscription))
                .route("/checkout/{id}", web::get().to(pay_page))
                .route("/checkout/{id}/pay", web::post().to(pay))
                .route("/portal/{customer}", web::get().to(portal_page))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(std::io::Error::other)?;
        Ok(Self { base_url, shared, handle, http })
    }

    /// Where webhooks go, and the secret they are signed with.
    pub fn set_webhook(&self, url: &str, secret: &str) {
        *self.shared.webhook.lock().unwrap_or_else(|e| e.into_inner()) = Some((url.to_owned(), secret.to_owned()));
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = faults;
    }

    /// API requests served so far, as `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// Customers created (an idempotent replay creates none).
    pub fn customers(&self) -> Vec<Customer> {
        self.shared.lock().customers.values().cloned().collect()
    }

    /// How many times a customer was really created.
    pub fn customer_creations(&self) -> u32 {
        self.shared.lock().customer_creations
    }

    pub fn session(&self, id: &str) -> Option<CheckoutSession> {
        self.shared.lock().sessions.get(id).cloned()
    }

    pub fn subscription(&self, id: &str) -> Option<Subscription> {
        self.shared.lock().subscriptions.get(id).cloned()
    }

    /// The Checkout session a URL of ours names.
    pub fn session_of_url(&self, url: &str) -> Option<String> {
        url.strip_prefix(&format!("{}checkout/", self.base_url)).map(str::to_owned)
    }

    /// The customer pays the session: an active subscription; queues `checkout.session.completed`,
    /// `customer.subscription.created` and `invoice.paid`. The subscription's id.
    pub fn complete_checkout(&self, session: &str) -> Option<String> {
        complete(&mut self.shared.lock(), session, &self.base_url)
    }

    /// Moves a subscription to `status`; queues `customer.subscription.updated` (and `invoice.payment_failed` for
    /// `past_due`, `invoice.paid` when it comes back to `active`).
    pub fn set_status(&self, subscription: &str, status: &str) {
        let mut state = self.shared.lock();
        let Some(mut s) = state.subscriptions.get(subscription).cloned() else { return };
        let was = std::mem::replace(&mut s.status, status.to_owned());
        state.subscriptions.insert(s.id.clone(), s.clone());
        let object = state.subscription_json(&s);
        state.emit("customer.subscription.updated", object);
        if status == "past_due" {
            let invoice = state.invoice_json(&s, false);
            state.emit("invoice.payment_failed", invoice);
        } else if status == "active" && was != "active" {
            let invoice = state.invoice_json(&s, true);
            state.emit("invoice.paid", invoice);
        }
    }

    /// Changes the subscription's price (a plan change in the portal); queues `customer.subscription.updated`.
    pub fn change_price(&self, subscription: &str, price: &str) {
        let mut state = self.shared.lock();
        let Some(mut s) = state.subscriptions.get(subscription).cloned() else { return };
        s.price = price.to_owned();
        state.subscriptions.insert(s.id.clone(), s.clone());
        let object = state.subscription_json(&s);
        state.emit("customer.subscription.updated", object);
    }

    /// Sets the subscription to end with its period; queues `customer.subscription.updated`.
    pub fn cancel_at_period_end(&self, subscription: &str) {
        let mut state = self.shared.lock();
        let Some(mut s) = state.subscriptions.get(subscription).cloned() else { return };
        s.cancel_at_period_end = true;
        state.subscriptions.insert(s.id.clone(), s.clone());
        let object = state.subscription_json(&s);
        state.emit("customer.subscription.updated", object);
    }

    /// The period ends (of a subscription set to cancel): `canceled`; queues `customer.subscription.deleted`.
    pub fn end_period(&self, subscription: &str) {
        let mut state = self.shared.lock();
        let Some(mut s) = state.subscriptions.get(subscription).cloned() else { return };
        s.status = "canceled".to_owned();
        state.subscriptions.insert(s.id.clone(), s.clone());
        let object = state.subscription_json(&s);
        state.emit("customer.subscription.deleted", object);
    }

    /// Changes what Stripe says of a subscription without sending any event (drift, for the reconciliation).
    pub fn drift(&self, subscription: &str, change: impl FnOnce(&mut Subscription)) {
        let mut state = self.shared.lock();
        if let Some(s) = state.subscriptions.get_mut(subscription) {
            change(s);
        }
    }

    /// The events queued and not yet delivered.
    pub fn pending(&self) -> Vec<SentEvent> {
        self.shared.lock().outbox.clone()
    }

    /// Takes the queued events out without delivering them (to deliver them later, in another order, or twice).
    pub fn take_pending(&self) -> Vec<SentEvent> {
        std::mem::take(&mut self.shared.lock().outbox)
    }

    /// An event created earlier, by id.
    pub fn event(&self, id: &str) -> Option<SentEvent> {
        self.shared.lock().events.get(id).cloned()
    }

    /// Delivers the queued events in order; each is retried (5 attempts, 100 ms apart) until the endpoint answers
    /// 2xx. The last status of each.
    pub async fn deliver(&self) -> Vec<(String, u16)> {
        let events = self.take_pending();
        let mut out = Vec::new();
        for event in events {
            out.push((event.id.clone(), self.send(&event, 5).await));
        }
        out
    }

    /// Sends one event (signed now), with up to `attempts` tries; the last status (0: unreachable).
    pub async fn send(&self, event: &SentEvent, attempts: u32) -> u16 {
        let Some((url, secret)) = self.shared.webhook.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return 0;
        };
        let mut status = 0;
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let header = billing_signature(&secret, now(), event.body.as_bytes());
            let sent = self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .header("stripe-signature", header)
                .body(event.body.clone())
                .send()
                .await;
            status = sent.map(|r| r.status().as_u16()).unwrap_or(0);
            if (200..300).contains(&status) {
                break;
            }
        }
        status
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// The `Stripe-Signature` header for `body` (the same scheme Stripe uses: HMAC-SHA256 of `"t.body"`).
pub fn billing_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    billing::webhook::signature_header(secret, timestamp, body)
}

fn complete(state: &mut State, session: &str, _base: &str) -> Option<String> {
    let mut s = state.sessions.get(session).cloned()?;
    if let Some(existing) = &s.subscription {
        return Some(existing.clone());
    }
    let id = state.id("sub");
    let created = now();
    let mut metadata = HashMap::new();
    if let Some(tenant) = &s.client_reference_id {
        metadata.insert("tenant_id".to_owned(), tenant.clone());
    }
    let sub = Subscription {
        id: id.clone(),
        customer: s.customer.clone(),
        price: s.price.clone(),
        status: "active".to_owned(),
        cancel_at_period_end: false,
        current_period_end: created + PERIOD,
        created,
        metadata,
    };
    state.subscriptions.insert(id.clone(), sub.clone());
    s.subscription = Some(id.clone());
    state.sessions.insert(s.id.clone(), s.clone());
    let session_json = state.session_json(&s, "");
    state.emit("checkout.session.completed", session_json);
    let sub_json = state.subscription_json(&sub);
    state.emit("customer.subscription.created", sub_json);
    let invoice = state.invoice_json(&sub, true);
    state.emit("invoice.paid", invoice);
    Some(id)
}

/// The form parameters of a request body.
fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Checks the key, counts the request, applies faults; `Err` with the answer to give instead.
async fn admit(shared: &Shared, req: &HttpRequest) -> Result<(), HttpResponse> {
    let delay = {
        let mut state = shared.lock();
        state.requests.push(format!("{} {}", req.method(), req.path()));
        state.faults.delay
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {SECRET_KEY}"));
    if !authorized {
        return Err(error(401, "invalid_request_error", "api_key_invalid", "Invalid API Key provided."));
    }
    let mut state = shared.lock();
    if state.faults.unavailable > 0 {
        state.faults.unavailable -= 1;
        return Err(error(500, "api_error", "internal", "Simulated outage."));
    }
    Ok(())
}

/// Runs `create` once per idempotency key: a repeat with the same parameters gets the first answer, with others 400.
fn idempotent(
    state: &mut State,
    req: &HttpRequest,
    params: &[(String, String)],
    create: impl FnOnce(&mut State) -> (u16, Value),
) -> HttpResponse {
    let key = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut sorted = params.to_vec();
    sorted.sort();
    if let Some(key) = &key
        && let Some((seen, status, body)) = state.idempotent.get(key)
    {
        if *seen != sorted {
            return error(
                400,
                "idempotency_error",
                "idempotency_key_in_use",
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            );
        }
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(*status).unwrap_or_default())
            .insert_header(("idempotent-replayed", "true"))
            .json(body);
    }
    let (status, body) = create(state);
    if let Some(key) = key {
        state.idempotent.insert(key, (sorted, status, body.clone()));
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default()).json(body)
}

async fn create_customer(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(refused) = admit(&shared, &req).await {
        return refused;
    }
    let params = form(&body);
    let mut state = shared.lock();
    idempotent(&mut state, &req, &params, |state| {
        let id = state.id("cus");
        let metadata = params
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("metadata[")?.strip_suffix(']')?.to_owned(), v.clone())))
            .collect();
        let customer = Customer {
            id: id.clone(),
            email: param(&params, "email").unwrap_or_default().to_owned(),
            name: param(&params, "name").unwrap_or_default().to_owned(),
            metadata,
        };
        state.customers.insert(id.clone(), customer.clone());
        state.customer_creations += 1;
        (
            200,
            json!({ "id": id, "object": "customer", "created": now(), "livemode": false,
                      "email": customer.email, "name": customer.name, "metadata": customer.metadata }),
        )
    })
}

async fn create_session(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(refused) = admit(&shared, &req).await {
        return refused;
    }
    let params = form(&body);
    let base = shared.base_url.clone();
    let mut state = shared.lock();
    let customer = param(&params, "customer").unwrap_or_default().to_owned();
    if !state.customers.contains_key(&customer) {
        return error(400, "invalid_request_error", "resource_missing", "No such customer.");
    }
    let Some(price) = param(&params, "line_items[0][price]").map(str::to_owned) else {
        return error(400, "invalid_request_error", "parameter_missing", "line_items[0][price] is required.");
    };
    if ![PRICE_PRO, PRICE_ENTERPRISE].contains(&price.as_str()) {
        return error(400, "invalid_request_error", "resource_missing", "No such price.");
    }
    if param(&params, "mode") != Some("subscription") {
        return error(400, "invalid_request_error", "parameter_invalid", "mode must be subscription.");
    }
    idempotent(&mut state, &req, &params, |state| {
        let session = CheckoutSession {
            id: state.id("cs"),
            customer,
            price,
            client_reference_id: param(&params, "client_reference_id").map(str::to_owned),
            success_url: param(&params, "success_url").unwrap_or_default().to_owned(),
            subscription: None,
        };
        state.sessions.insert(session.id.clone(), session.clone());
        (200, state.session_json(&session, &base))
    })
}

async fn create_portal(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(refused) = admit(&shared, &req).await {
        return refused;
    }
    let params = form(&body);
    let mut state = shared.lock();
    let customer = param(&params, "customer").unwrap_or_default().to_owned();
    if !state.customers.contains_key(&customer) {
        return error(400, "invalid_request_error", "resource_missing", "No such customer.");
    }
    let id = state.id("bps");
    HttpResponse::Ok().json(json!({
        "id": id, "object": "billing_portal.session", "configuration": "bpc_simulator", "created": now(),
        "customer": customer, "livemode": false, "url": format!("{}portal/{customer}", shared.base_url),
        "return_url": param(&params, "return_url"),
    }))
}

async fn get_subscription(shared: web::Data<Shared>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    if let Err(refused) = admit(&shared, &req).await {
        return refused;
    }
    let state = shared.lock();
    match state.subscriptions.get(path.as_str()) {
        Some(s) => HttpResponse::Ok().json(state.subscription_json(s)),
        None => error(404, "invalid_request_error", "resource_missing", "No such subscription."),
    }
}

/// `DELETE /v1/subscriptions/{id}`: cancels at once; queues `customer.subscription.deleted`.
async fn cancel_subscription(shared: web::Data<Shared>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    if let Err(refused) = admit(&shared, &req).await {
        return refused;
    }
    let mut state = shared.lock();
    let Some(mut s) = state.subscriptions.get(path.as_str()).cloned() else {
        return error(404, "invalid_request_error", "resource_missing", "No such subscription.");
    };
    s.status = "canceled".to_owned();
    state.subscriptions.insert(s.id.clone(), s.clone());
    let object = state.subscription_json(&s);
    state.emit("customer.subscription.deleted", object.clone());
    HttpResponse::Ok().json(object)
}

/// The customer's Checkout page (for the demo): one button that pays.
async fn pay_page(shared: web::Data<Shared>, path: web::Path<String>) -> HttpResponse {
    let state = shared.lock();
    let Some(session) = state.sessions.get(path.as_str()) else {
        return HttpResponse::NotFound().body("No such Checkout session.");
    };
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><title>Stripe simulator checkout</title><h1>Subscribe to {}</h1>\
         <form method=post action=\"/checkout/{}/pay\"><button>Pay (simulated)</button></form>",
        session.price, session.id
    ))
}

async fn pay(shared: web::Data<Shared>, path: web::Path<String>) -> HttpResponse {
    let mut state = shared.lock();
    let base = shared.base_url.clone();
    let Some(_) = complete(&mut state, &path, &base) else {
        return HttpResponse::NotFound().body("No such Checkout session.");
    };
    let success = state.sessions.get(path.as_str()).map(|s| s.success_url.clone()).unwrap_or_default();
    HttpResponse::SeeOther().insert_header(("location", success)).finish()
}

async fn portal_page(path: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!("<!doctype html><title>Stripe simulator portal</title><h1>Billing portal of {path}</h1>"))
}
