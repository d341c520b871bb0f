-- The data API benchmarks' table (crud.sh, hosts.sh): 10,000 rows, nine in
-- ten of them public, readable by anon under a row rule.
drop table if exists public.items;
create table public.items (id int primary key, title text not null, category int not null, score int not null, public boolean not null);
insert into public.items select i, 'item ' || i, i % 50, (i * 7919) % 10007, i % 10 <> 0 from generate_series(1, 10000) i;
create index items_category_score on public.items (category, score);
alter table public.items enable row level security;
create policy public_items on public.items for select to anon using (public);
analyze public.items;
