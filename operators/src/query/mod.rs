//! What the query kinds share: date ranges and intervals, series (EventsNode) matching,
//! property filters and breakdowns.
