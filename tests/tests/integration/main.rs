//! Integration tests: the real handlers against moto (DynamoDB, KMS) and the HubSpot simulator
//! on loopback. One binary, one module per feature. Run through `make test`, which starts moto.

mod app_secrets;
mod bitrix24;
mod connect;
mod crash_matrix;
mod events;
mod exactly_once_bitrix24;
mod exactly_once_freshsales;
mod exactly_once_google_sheets;
mod exactly_once_hubspot;
mod exactly_once_salesforce;
mod exactly_once_zoho;
mod freshsales;
mod freshsales_requests;
mod google_sheets;
mod http_client;
mod hubspot_requests;
mod isolation;
mod lead_order;
mod lead_sync;
mod lifecycle_events;
mod manage;
mod oauth_state;
mod openapi;
mod parked_leads;
mod push;
mod redrive;
mod refresh;
mod refresh_schedule;
mod salesforce;
mod salesforce_requests;
mod template_secrets;
mod template_timeouts;
mod token_custody;
mod zoho;
mod zoho_requests;
