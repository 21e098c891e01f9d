-- The chain heads, spread over more pages.
--
-- Every event locks its organization's head row and writes a new version of
-- it. The 1,032 heads of a statewide trail fit in about ten 8 kB pages; with
-- 32 writers most pages had several writers at once, new versions no longer
-- fitted beside the old ones, and the table grew from 10 to 86 pages in six
-- seconds: writers waited to extend it (Lock:extend, up to six backends on
-- average) and on each other's row locks. With fillfactor 10 a page keeps
-- room for its rows' next versions and holds about eight heads: measured at
-- 32 writers, taking turns, 1,285 and 982 events/s against 945 and 835
-- (docs/performance.md, "The audit write"). The rows and the chain step are
-- unchanged; CLUSTER rewrites the table now so that the existing heads
-- spread out too (it does not fire the table's row triggers).

alter table audit_chain_heads set (fillfactor = 10);
cluster audit_chain_heads using audit_chain_heads_pkey;
