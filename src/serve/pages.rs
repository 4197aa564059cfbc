//! The pages: each reads through the command's own library function and
//! draws what the command prints, as HTML. maud escapes every value; the
//! only markup passed through unescaped is the charts' SVG, drawn by the
//! engine (plotters escapes the text in it, and no control character of
//! the data reaches it: `trends::chart::shorten`).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Datelike, Days, Months, NaiveDate, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::params;
use super::{blocking, App, Refusal, Reply};
use crate::costs::render::Format;
use crate::output::TextTable;
use crate::summaries::Summaries;

/// The one style sheet (inline: the policy allows no other source).
const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0; color: #1b1f24; background: #fff; }
header { background: #16324f; padding: 0.6rem 1.2rem; }
header a { color: #fff; margin-right: 1.4rem; text-decoration: none; font-weight: 600; }
header a.here { text-decoration: underline; }
main { padding: 1rem 1.2rem 2rem; }
h1 { font-size: 1.4rem; margin: 0.2rem 0 0.8rem; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 0.5rem; }
form { display: flex; flex-wrap: wrap; gap: 0.6rem 1rem; align-items: end; margin-bottom: 1rem; }
label { display: flex; flex-direction: column; font-size: 0.8rem; color: #444; }
input, select, button { font: inherit; padding: 0.2rem 0.4rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.4rem 0; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { background: #f0f3f6; text-align: left; position: sticky; top: 0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 600; }
.scroll { overflow-x: auto; }
.notes { font-size: 0.85rem; color: #333; }
.downloads a { margin-right: 1rem; }
.chart svg { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { font-size: 0.85rem; background: #f7f7f7; padding: 0.6rem; overflow-x: auto; }
";

/// The page around `body`: navigation, title, the style sheet.
fn layout(title: &str, here: &str, body: Markup) -> Reply {
    let nav = [
        ("/costs", "Costs"),
        ("/errors", "Errors"),
        ("/runs", "Runs"),
    ];
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · callrollup" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    nav {
                        @for (href, name) in nav {
                            a href=(href) class=[(href == here).then_some("here")] { (name) }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    Reply::Html(page.into_string())
}

/// A table for people as HTML: the same cells as the terminal's.
fn table(table: &TextTable) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr { @for h in &table.header { th { (h) } } } }
                tbody {
                    @for (i, row) in table.rows.iter().enumerate() {
                        tr class=[table.is_total(i).then_some("total")] {
                            @for cell in row {
                                td class=[cell.number.then_some("n")] {
                                    @if let Some(href) = &cell.link {
                                        a href=(href) { (cell.text) }
                                    } @else {
                                        (cell.text)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// An SVG drawn by the engine, inline.
fn chart(svg: &str) -> Markup {
    // plotters writes no XML declaration; strip one if it ever does.
    let svg = svg
        .strip_prefix("<?xml")
        .and_then(|rest| rest.split_once("?>").map(|(_, s)| s))
        .unwrap_or(svg);
    html! { div.chart { (PreEscaped(svg)) } }
}

fn notes(lines: &[String]) -> Markup {
    html! { ul.notes { @for line in lines { li { (line) } } } }
}

/// Where the figures were read, as a web reader is told it: what, never
/// where on the server (a path is the operator's to know, and a
/// customer's page showed "report files under /srv/…").
fn read_from_for_readers(app: &App, with_source: bool) -> String {
    let figures = match &app.config.reads {
        super::Reads::Reports(_) => "the report files".to_string(),
        // What the command says too (a schema's name is no secret): a
        // download is the bytes `costs` writes.
        super::Reads::Database { schema, .. } => format!("summary tables in schema {schema}"),
    };
    if with_source && app.config.source.is_some() {
        format!("{figures} (and the platform's rows for days not rolled up)")
    } else {
        figures.to_string()
    }
}

/// The columns the cost page's form offers to sort by (`--sort` takes any).
const SORTS: &[(&str, &str)] = &[
    ("total_cost_usd", "total cost"),
    ("calls", "calls"),
    ("cost_per_call_usd", "cost per call"),
    ("cost_per_booking_usd", "cost per booking"),
    ("change_total_cost_pct", "change in cost (%)"),
    ("business_name", "tenant name"),
];

/// The period form shared by the cost pages.
fn period_form(action: &str, pairs: &[(String, String)], with_by: bool) -> Markup {
    let value = |name: &str| params::value(pairs, name);
    let by = value("by");
    html! {
        form method="get" action=(action) {
            label { "Month" input type="month" name="month" value=(value("month")); }
            label { "or from" input type="date" name="from" value=(value("from")); }
            label { "to" input type="date" name="to" value=(value("to")); }
            @if with_by {
                label { "By"
                    select name="by" {
                        @for option in ["tenant", "day", "month", "outcome"] {
                            option value=(option) selected[by == option] { (option) }
                        }
                    }
                }
                label { "Tenant" input type="text" name="tenant" size="36" value=(value("tenant")); }
                label { "Sort by"
                    select name="sort" {
                        option value="" selected[value("sort").is_empty()] { "total cost (tenants), date (days)" }
                        @for (option, text) in SORTS {
                            option value=(option) selected[value("sort") == *option] { (text) }
                        }
                    }
                }
                label { "Top" input type="number" name="top" min="1" value=(value("top")); }
            }
            button type="submit" { "Show" }
        }
    }
}

/// Lines a page shows at most: past them, the first `PAGE_ROWS` and one
/// line adding up the rest (a 200-day report by day was 109 MB of HTML).
/// The downloads hold every line.
pub const PAGE_ROWS: usize = 200;

/// Lines a workbook is built with at most: a workbook is a zip, built
/// whole in memory, so a bigger one is the command's to write.
pub const WORKBOOK_LINES: usize = 5_000;

/// The lines of a report (not its TOTAL).
fn lines(report: &crate::costs::Report) -> usize {
    report.rows.iter().filter(|r| !r.is_total()).count()
}

/// Whether a workbook of this report is more than the web view builds.
fn workbook_refused(report: &crate::costs::Report) -> bool {
    lines(report) > WORKBOOK_LINES && report.view.top.is_none_or(|top| top > WORKBOOK_LINES)
}

/// Keeps a page to `PAGE_ROWS` lines (the rest added up in one line), and
/// says so where `--top`'s own note would say the downloads leave them out.
fn bound_page(report: &mut crate::costs::Report) -> Option<String> {
    let all = lines(report);
    if all <= PAGE_ROWS || report.view.top.is_some_and(|top| top <= PAGE_ROWS) {
        return None;
    }
    report.view.top = Some(PAGE_ROWS);
    Some(format!(
        "this page shows {PAGE_ROWS} of the {all} lines (the largest first; the rest are added up in one line): the CSV and JSON downloads hold every line"
    ))
}

/// The notes of a report whose page `bound_page` cut: its note replaces
/// the line that says which rows `--top` kept (it would say the downloads
/// leave the rest out; the page's downloads hold every line).
fn page_notes(
    report: &crate::costs::Report,
    notes: Vec<String>,
    bound: &Option<String>,
) -> Vec<String> {
    let Some(bound) = bound else {
        return notes;
    };
    let top_line = crate::costs::render::view_line(report);
    std::iter::once(bound.clone())
        .chain(notes.into_iter().filter(|n| Some(n) != top_line.as_ref()))
        .collect()
}

/// Periods longer than this get no anomalies on a page: each view reads
/// every tenant's days of the period and of its baselines (a month of
/// 1,000 tenants: about 90,000 tenant days, 45 MB for the request).
const ANOMALY_PAGE_DAYS: i64 = 35;
/// The anomalies a page lists (the largest first).
const ANOMALY_PAGE_LINES: usize = 20;

/// The cost anomalies of a page's period, or why there are none to show.
fn page_anomalies(
    summaries: &mut crate::summaries::Summaries,
    period: crate::window::Period,
    tenants: &crate::selection::TenantSelection,
) -> crate::error::Result<Result<crate::anomalies::Analysis, String>> {
    if period.days() > ANOMALY_PAGE_DAYS {
        return Ok(Err(format!(
            "cost anomalies are shown for periods of at most {ANOMALY_PAGE_DAYS} days: pick a shorter one, or run `callrollup anomalies --from {} --to {}`",
            period.from, period.to
        )));
    }
    // A page of one tenant (a customer's are all of one) measures it
    // against its own history alone: no platform line, nothing of the
    // other tenants.
    Ok(Ok(crate::anomalies::read(
        summaries,
        period,
        crate::anomalies::Rule::default(),
        tenants,
        tenants.tenants.is_empty(),
    )?))
}

/// The tenant days a chart rings: the tenants' rises.
fn marks(anomalies: &Result<crate::anomalies::Analysis, String>) -> crate::costs::chart::Marks {
    anomalies
        .as_ref()
        .map(|a| {
            a.rises
                .iter()
                .filter_map(|l| Some((l.tenant_id.clone()?, l.day)))
                .collect()
        })
        .unwrap_or_default()
}

/// The rises of a page's period (at most `ANOMALY_PAGE_LINES`), how many
/// fell, and the days nothing can be said about.
fn anomalies_markup(anomalies: &Result<crate::anomalies::Analysis, String>) -> Markup {
    use crate::anomalies::render;
    let found = match anomalies {
        Ok(found) => found,
        Err(why) => return notes(std::slice::from_ref(why)),
    };
    let (from, to) = (found.period.from, found.period.to);
    let mut lines = Vec::new();
    if found.rises.is_empty() {
        lines.push(format!(
            "No cost rose beyond its baseline in {from}..{to} ({} tenant days assessed).",
            found.tenant_days_assessed
        ));
    } else {
        lines.push(format!(
            "{} line(s) rose, {} USD above their baselines (tenant lines), ringed on the chart; the largest first.",
            found.rises.len(),
            crate::money::cents_text(render::total_excess(&found.rises))
        ));
    }
    if found.rises.len() > ANOMALY_PAGE_LINES {
        lines.push(format!(
            "This page shows {ANOMALY_PAGE_LINES} of them: `callrollup anomalies --from {from} --to {to}` lists them all."
        ));
    }
    if !found.falls.is_empty() {
        lines.push(format!(
            "{} line(s) fell below their baselines (not alarms).",
            found.falls.len()
        ));
    }
    lines.extend(render::unknown_lines(found));
    let shown = &found.rises[..found.rises.len().min(ANOMALY_PAGE_LINES)];
    html! {
        (notes(&lines))
        @if !shown.is_empty() {
            (table(&render::text_table(shown, from, to)))
        }
    }
}

/// `/costs`: the `costs` report, its chart and its downloads.
pub async fn costs(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    blocking(app, move |app| {
        let pairs = params::pairs(query.as_deref(), params::COSTS)?;
        let args = params::costs(&pairs, &[])?;
        let mut summaries = app.summaries()?;
        let selection = args.tenants.selection()?;
        let (mut report, anomalies) = summaries.snapshot(|summaries| {
            let report = crate::cmd::costs::report(&args, summaries, None)?;
            let anomalies = page_anomalies(summaries, report.period, &selection)?;
            Ok((report, anomalies))
        })?;
        drop(summaries);
        report.read_from = read_from_for_readers(app, false);
        // Asked before the page's own bound sets a top.
        let no_workbook = workbook_refused(&report);
        let bound = bound_page(&mut report);
        let top = args.top.map_or(5, |n| n as usize).min(10);
        let svg = crate::costs::chart::daily_svg(&report, top, &marks(&anomalies))?;
        let links = params::link_query(&pairs);
        let title = format!("Costs {}..{}", report.period.from, report.period.to);
        Ok(layout(
            &title,
            "/costs",
            html! {
                h1 { (title) }
                (period_form("/costs", &pairs, true))
                p.downloads {
                    "Download: "
                    @for format in ["csv", "xlsx", "json"] {
                        @if format == "xlsx" && no_workbook {
                            // Not a link to a refusal: say why instead.
                            span title={ "more than " (WORKBOOK_LINES) " lines: write it with callrollup costs --format xlsx" } {
                                "XLSX (over " (WORKBOOK_LINES) " lines: the CLI writes it)"
                            }
                            " "
                        } @else {
                            a href={ "/costs." (format) "?" (links) } { (format.to_uppercase()) }
                        }
                    }
                }
                // What limits the figures comes before them, not under
                // a long table.
                @let warnings = page_notes(&report, crate::costs::render::comparison_notes(&report), &bound);
                @if !warnings.is_empty() {
                    (notes(&warnings))
                }
                (chart(&svg))
                // Above the lines: the table can be 200 lines long.
                h2 { "Cost anomalies" }
                (anomalies_markup(&anomalies))
                h2 { "Costs" }
                (table(&crate::costs::render::text_table(&report, false)))
                @if let Some(outcomes) = crate::costs::render::outcome_totals_table(&report) {
                    h2 { "Each outcome across tenants" }
                    (table(&outcomes))
                }
                // The rest of the notes (those above are not said twice).
                (notes(
                    &page_notes(&report, crate::costs::render::notes(&report), &bound)
                        .into_iter()
                        .filter(|n| !warnings.contains(n))
                        .collect::<Vec<_>>()
                ))
            },
        ))
    })
    .await
}

/// `/costs.csv|json|xlsx`: the bytes `costs --format …` writes.
async fn costs_download(
    app: Arc<App>,
    query: Option<String>,
    format: Format,
    version: axum::http::Version,
) -> Response {
    // A streamed download ends broken when it is cut, which only chunked
    // encoding can say: over HTTP/1.0 a cut one would end like a whole
    // file (a close).
    if matches!(format, Format::Csv | Format::Json) && version < axum::http::Version::HTTP_11 {
        return axum::response::IntoResponse::into_response(Refusal::new(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "downloads are streamed over HTTP/1.1 (a proxy in front: nginx needs `proxy_http_version 1.1;`)",
        ));
    }
    blocking(app, move |app| {
        let pairs = params::pairs(query.as_deref(), params::COSTS)?;
        let (name, content_type) = match format {
            Format::Csv => ("csv", "text/csv; charset=utf-8"),
            Format::Json => ("json", "application/json"),
            _ => (
                "xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
        };
        let args = params::costs(&pairs, &[&format!("--format={name}")])?;
        let mut summaries = app.summaries()?;
        let mut report = crate::cmd::costs::report(&args, &mut summaries, None)?;
        // The session goes back to the others before the bytes are sent.
        drop(summaries);
        report.read_from = read_from_for_readers(app, false);
        let file = format!("costs-{}-{}.{name}", report.period.from, report.period.to);
        match format {
            Format::Csv => Ok(Reply::Stream(
                content_type,
                file,
                Box::new(move |out| crate::costs::render::write_csv(&report, out)),
            )),
            Format::Json => Ok(Reply::Stream(
                content_type,
                file,
                Box::new(move |out| crate::costs::render::write_json(&report, out)),
            )),
            _ => {
                let all = lines(&report);
                if workbook_refused(&report) {
                    return Err(Refusal::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!(
                            "this workbook would hold {all} lines; the web view builds workbooks of up to {WORKBOOK_LINES}: download the CSV, ask for fewer lines (top, by month), or write it with `callrollup costs --format xlsx {} --output FILE.xlsx`",
                            crate::text::printable(&cli_options(&pairs))
                        ),
                    ));
                }
                let bytes = crate::cmd::costs::bytes(&args, &report)?;
                Ok(Reply::Download(bytes, content_type, file))
            }
        }
    })
    .await
}

/// A page's parameters as the command's options, for a refusal to quote.
fn cli_options(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("--{name} {value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn costs_csv(
    State(app): State<Arc<App>>,
    version: axum::http::Version,
    RawQuery(query): RawQuery,
) -> Response {
    costs_download(app, query, Format::Csv, version).await
}

pub async fn costs_json(
    State(app): State<Arc<App>>,
    version: axum::http::Version,
    RawQuery(query): RawQuery,
) -> Response {
    costs_download(app, query, Format::Json, version).await
}

pub async fn costs_xlsx(
    State(app): State<Arc<App>>,
    version: axum::http::Version,
    RawQuery(query): RawQuery,
) -> Response {
    costs_download(app, query, Format::Xlsx, version).await
}

/// The trends `args` ask for, their chart and their table, as a section.
fn errors_section(app: &App, args: &crate::cli::errors::Args) -> Result<Markup, Refusal> {
    let mut summaries = match args.bucket {
        crate::trends::Bucketing::Day => Some(app.summaries()?),
        crate::trends::Bucketing::Hour => None,
    };
    let analysis =
        crate::cmd::errors::analysis(args, summaries.as_deref_mut(), app.config.source.as_ref())
            .map_err(|e| match e {
                crate::error::Error::Usage(m) if m.starts_with("--bucket hour reads") => {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "hourly buckets read the platform's rows: start serve with --source DIR",
                    )
                }
                e => e.into(),
            })?;
    drop(summaries);
    errors_markup(app, args, analysis)
}

/// An analysis's chart and table, as a section.
fn errors_markup(
    app: &App,
    args: &crate::cli::errors::Args,
    mut analysis: crate::trends::Analysis,
) -> Result<Markup, Refusal> {
    analysis.read_from = read_from_for_readers(app, true);
    let top = args.top.map(usize::from);
    // The chart's groups stay few (the rest is "other").
    let svg = crate::trends::chart::render(
        &analysis,
        top.unwrap_or(crate::trends::chart::DEFAULT_TOP).min(20),
        crate::trends::chart::ChartKind::Svg,
    )?;
    let svg = String::from_utf8(svg).unwrap_or_default();
    let shown = top.unwrap_or(10).min(PAGE_ROWS);
    Ok(html! {
        p { (crate::trends::render::heading(&analysis)) }
        (chart(&svg))
        @if analysis.groups.is_empty() {
            p { (crate::trends::render::no_errors_text(&analysis)) }
        } @else {
            (table(&crate::trends::render::text_table(&analysis, shown)))
        }
        pre { (crate::trends::render::after_table(&analysis, shown).trim()) }
    })
}

/// `/errors`: the `errors` report with its chart.
pub async fn errors(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    blocking(app, move |app| {
        let pairs = params::pairs(query.as_deref(), params::ERRORS)?;
        let args = params::errors(&pairs, &[])?;
        let section = errors_section(app, &args)?;
        let value = |name: &str| params::value(&pairs, name);
        let (by, bucket) = (value("by"), value("bucket"));
        Ok(layout(
            "Errors",
            "/errors",
            html! {
                h1 { "Errors" }
                form method="get" action="/errors" {
                    label { "Last" input type="text" name="since" size="5" placeholder="14d" value=(value("since")); }
                    label { "or from" input type="date" name="from" value=(value("from")); }
                    label { "to" input type="date" name="to" value=(value("to")); }
                    label { "By"
                        select name="by" {
                            @for option in ["error_type", "severity", "tenant"] {
                                option value=(option) selected[by == option] { (option) }
                            }
                        }
                    }
                    label { "Buckets"
                        select name="bucket" {
                            @for option in ["day", "hour"] {
                                option value=(option) selected[bucket == option] { (option) }
                            }
                        }
                    }
                    label { "Zone (hours)" input type="text" name="timezone" size="16" value=(value("timezone")); }
                    label { "Tenant" input type="text" name="tenant" size="36" value=(value("tenant")); }
                    button type="submit" { "Show" }
                }
                (section)
            },
        ))
    })
    .await
}

/// The last calendar month, as `costs` reports it by default.
fn last_month() -> (NaiveDate, NaiveDate) {
    let today = Utc::now().date_naive();
    let first = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).expect("a first day");
    (first - Months::new(1), first - Days::new(1))
}

/// `/tenants/{id}`: one tenant's month: daily cost, outcomes, errors, the
/// days not covered.
pub async fn tenant(
    State(app): State<Arc<App>>,
    Path(tenant_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    blocking(app, move |app| {
        let tenant = uuid::Uuid::parse_str(&tenant_id).map_err(|_| {
            Refusal::new(
                StatusCode::NOT_FOUND,
                "no such tenant: the address holds no tenant_id",
            )
        })?;
        let mut pairs = params::pairs(query.as_deref(), params::TENANT)?;
        pairs.push(("tenant".into(), tenant.to_string()));
        let mut by_day = pairs.clone();
        by_day.push(("by".into(), "day".into()));
        let mut by_outcome = pairs.clone();
        by_outcome.push(("by".into(), "outcome".into()));
        let days = params::costs(&by_day, &[])?;
        let mut summaries = app.summaries()?;
        let unknown = summaries.unknown_tenants(&days.tenants.selection()?)?;
        if !unknown.is_empty() {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                format!("no tenant {tenant} in the summary tables"),
            ));
        }
        let outcome_args = params::costs(&by_outcome, &[])?;
        // The errors of the page's period (a month, or nothing: the last
        // month).
        let (from, to) = match days.period.period()? {
            Some(p) => (p.from, p.to),
            None => last_month(),
        };
        let errors = params::errors(
            &[
                ("from".into(), from.to_string()),
                ("to".into(), to.to_string()),
                ("tenant".into(), tenant.to_string()),
            ],
            &[],
        )?;
        // The page's reports of one state of the tables.
        let selection = days.tenants.selection()?;
        let (mut daily, mut outcomes, analysis, anomalies) = summaries.snapshot(|summaries| {
            let daily = crate::cmd::costs::report(&days, summaries, None)?;
            let anomalies = page_anomalies(summaries, daily.period, &selection)?;
            Ok((
                daily,
                crate::cmd::costs::report(&outcome_args, summaries, None)?,
                crate::cmd::errors::analysis(
                    &errors,
                    Some(summaries),
                    app.config.source.as_ref(),
                )?,
                anomalies,
            ))
        })?;
        drop(summaries);
        daily.read_from = read_from_for_readers(app, false);
        outcomes.read_from = read_from_for_readers(app, false);
        let bounds: Vec<String> = [bound_page(&mut daily), bound_page(&mut outcomes)]
            .into_iter()
            .flatten()
            .collect();
        let name = daily
            .rows
            .iter()
            .find(|r| r.key.tenant_id.is_some())
            .map(|r| r.display_name())
            .unwrap_or_else(|| tenant.to_string());
        // From/to name a period; a month, or nothing, a month.
        let download_label = match days.period.period()? {
            Some(p) if !p.is_month => "Download the period: ",
            _ => "Download the month: ",
        };
        let error_section = errors_markup(app, &errors, analysis)?;
        let svg = crate::costs::chart::tenant_svg(&daily, &marks(&anomalies))?;
        let problems = daily.coverage.problems();
        let links = params::link_query(&pairs);
        Ok(layout(
            &name,
            "",
            html! {
                h1 { (name) " " small { (tenant) } }
                (period_form(&format!("/tenants/{tenant}"), &pairs, false))
                p.downloads {
                    (download_label)
                    @for format in ["csv", "xlsx", "json"] {
                        a href={ "/costs." (format) "?" (links) "&by=day" } { (format.to_uppercase()) }
                    }
                }
                h2 { "Daily cost and calls" }
                @if !bounds.is_empty() {
                    (notes(&bounds))
                }
                (chart(&svg))
                h2 { "Cost anomalies" }
                (anomalies_markup(&anomalies))
                h2 { "Each day" }
                (table(&crate::costs::render::text_table(&daily, false)))
                h2 { "Outcomes" }
                (table(&crate::costs::render::text_table(&outcomes, false)))
                h2 { "Errors" }
                (error_section)
                h2 { "Days not covered" }
                @if problems.is_empty() {
                    p { "Every day of the period is covered by a succeeded run." }
                } @else {
                    (notes(&problems))
                }
            },
        ))
    })
    .await
}

/// `/runs`: the ledger, the last success, the days of the last 30 not
/// covered.
pub async fn runs(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    blocking(app, move |app| {
        params::pairs(query.as_deref(), &[])?;
        let mut summaries = app.summaries()?;
        let today = Utc::now().date_naive();
        let recent = crate::window::Period {
            from: today - Days::new(30),
            to: today - Days::new(1),
            is_month: false,
        };
        // The coverage and the ledger of one state.
        let (coverage, ledger) = summaries.snapshot(|summaries| {
            let coverage = summaries.coverage(&recent)?;
            let ledger = match summaries {
                Summaries::Database { client, schema, .. } => {
                    Some(crate::ledger::list(client, schema, 100)?)
                }
                Summaries::Reports(_) => None,
            };
            Ok((coverage, ledger))
        })?;
        let last_success = ledger
            .iter()
            .flatten()
            .find(|r| r.status == "succeeded")
            .map(|r| {
                format!(
                    "last success: run {} for {}..{}, finished {}",
                    r.run_id,
                    r.window_from,
                    r.window_to,
                    r.finished_at.clone().unwrap_or_default()
                )
            });
        let problems = coverage.problems();
        Ok(layout(
            "Runs",
            "/runs",
            html! {
                h1 { "Runs" }
                @match &ledger {
                    Some(runs) => {
                        p { (last_success.unwrap_or_else(|| "no run has succeeded yet".into())) }
                        (table(&crate::cmd::runs::text_table(runs)))
                    }
                    None => p { "Read from " (read_from_for_readers(app, false)) ": report files keep no ledger." }
                }
                h2 { "Days of the last 30 not covered" }
                @if problems.is_empty() {
                    p { "Every day from " (recent.from) " to " (recent.to) " is covered." }
                } @else {
                    (notes(&problems))
                }
            },
        ))
    })
    .await
}
