%% muproc_bench.erl - Erlang/OTP anchors for the muproc benchmarks.
%%
%%   erl -noshell -pa DIR -run muproc_bench main BENCH [ARG...] -s init stop
%%
%% BENCH [ARG...]                 prints RESULT lines for
%% ping_pong N REPS               ping-pong/erlang       (us/rt)
%% one_way N REPS                 one-way/erlang         (Mmsg/s)
%% fan_in SENDERS PER REPS        fan-in/erlang          (Mmsg/s)
%% spawn N REPS                   spawn/erlang, spawn-seq/erlang (us/spawn)
%% call N REPS                    call/erlang            (us/call)
%% ring N M REPS                  ring/erlang            (us/hop)
%% selective JUNK K REPS          selective/erlang, selective/erlang-ref,
%%                                selective-empty/erlang (us/recv)
%% capacity LEVEL...              memory-LEVEL/erlang, memory-LEVEL/erlang-rss
%%                                (KiB/proc)
%%
%% Several benches may be given one after another (each with its args).
%% Each one warms up at a tenth of its size, then times REPS repetitions
%% in this one VM and reports their median, min and max.
-module(muproc_bench).
-behaviour(gen_server).
-export([main/1]).
-export([init/1, handle_call/3, handle_cast/2]).

main(Args) ->
    try run(Args)
    catch C:E:St ->
            io:format(standard_error, "muproc_bench: ~p:~p~n~p~n", [C, E, St]),
            halt(1)
    end,
    halt(0).

run([]) -> ok;
run(["ping_pong", N, R | Rest]) ->
    report("ping-pong", "erlang", "us/rt", i(N), i(R), per_op(fun ping_pong/1)),
    run(Rest);
run(["one_way", N, R | Rest]) ->
    report("one-way", "erlang", "Mmsg/s", i(N), i(R), rate(fun one_way/1)),
    run(Rest);
run(["fan_in", S, P, R | Rest]) ->
    Senders = i(S),
    report("fan-in", "erlang", "Mmsg/s", Senders * i(P), i(R),
           rate(fun(N) -> fan_in(Senders, N div Senders) end)),
    run(Rest);
run(["spawn", N, R | Rest]) ->
    report("spawn", "erlang", "us/spawn", i(N), i(R), per_op(fun spawn_all/1)),
    report("spawn-seq", "erlang", "us/spawn", i(N), i(R), per_op(fun spawn_seq/1)),
    run(Rest);
run(["call", N, R | Rest]) ->
    report("call", "erlang", "us/call", i(N), i(R), per_op(fun call/1)),
    run(Rest);
run(["ring", N, M, R | Rest]) ->
    Procs = i(N), Laps = i(M),
    %% The size is the number of hops; the warm-up makes fewer laps.
    report("ring", "erlang", "us/hop", Procs * Laps, i(R),
           per_op(fun(Hops) -> ring(Procs, max(1, Hops div Procs)) end)),
    run(Rest);
run(["selective", J, K, R | Rest]) ->
    Junk = i(J),
    report("selective", "erlang", "us/recv", i(K), i(R),
           per_op(fun(N) -> selective(Junk, N) end)),
    report("selective", "erlang-ref", "us/recv", i(K), i(R),
           per_op(fun(N) -> selective_ref(Junk, N) end)),
    report("selective-empty", "erlang", "us/recv", i(K), i(R),
           per_op(fun(N) -> selective(0, N) end)),
    run(Rest);
run(["capacity" | Levels]) ->
    capacity([i(L) || L <- Levels]).

i(S) -> list_to_integer(S).

now_ns() -> erlang:monotonic_time(nanosecond).

%% Seconds F(N) takes, in a fresh process (a clean heap and mailbox for
%% every repetition).  F may return {elapsed, Seconds} to time only part
%% of its work itself.
time_it(F, N) ->
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       T0 = now_ns(),
                                       R = F(N),
                                       T1 = now_ns(),
                                       S = case R of
                                               {elapsed, E} -> E;
                                               _ -> (T1 - T0) / 1.0e9
                                           end,
                                       Self ! {self(), S}
                               end),
    receive
        {Pid, S} -> erlang:demonitor(Mon, [flush]), S;
        {'DOWN', Mon, process, Pid, Why} -> error({bench_failed, Why})
    end.

per_op(F) -> fun(N) -> time_it(F, N) * 1.0e6 / N end.
rate(F) -> fun(N) -> N / time_it(F, N) / 1.0e6 end.

report(Bench, Variant, Unit, N, Reps, Fig) ->
    Fig(max(1, N div 10)),
    Sorted = lists:sort([Fig(N) || _ <- lists:seq(1, Reps)]),
    Median = case Reps rem 2 of
                 1 -> lists:nth(Reps div 2 + 1, Sorted);
                 0 -> (lists:nth(Reps div 2, Sorted) + lists:nth(Reps div 2 + 1, Sorted)) / 2
             end,
    io:format("RESULT ~s ~s ~s ~s ~s ~s n=~b reps=~b~n",
              [Bench, Variant, num(Median), num(hd(Sorted)), num(lists:last(Sorted)),
               Unit, N, Reps]).

num(F) -> float_to_list(float(F), [{decimals, 6}, compact]).

%% ---- ping-pong -----------------------------------------------------

ping_pong(N) ->
    Pong = spawn_link(fun pong/0),
    ping(Pong, 0, N),
    Pong ! stop.

pong() ->
    receive
        {ping, From, I} -> From ! {pong, I + 1}, pong();
        stop -> ok
    end.

ping(_, N, N) -> ok;
ping(Pong, I, N) ->
    Pong ! {ping, self(), I},
    receive {pong, J} when J =:= I + 1 -> ping(Pong, I + 1, N) end.

%% ---- one-way and fan-in --------------------------------------------

one_way(N) ->
    Self = self(),
    Rcv = spawn_link(fun() -> consume(Self, N, 0) end),
    send_squares(Rcv, 0, N),
    receive {done, _} -> ok end.

consume(Parent, 0, Sum) -> Parent ! {done, Sum};
consume(Parent, K, Sum) ->
    receive #{cmd := square, x := X} -> consume(Parent, K - 1, Sum + X * X) end.

send_squares(_, N, N) -> ok;
send_squares(To, I, N) ->
    To ! #{cmd => square, x => I},
    send_squares(To, I + 1, N).

fan_in(Senders, Per) ->
    Self = self(),
    Rcv = spawn_link(fun() -> consume(Self, Senders * Per, 0) end),
    Ps = [spawn_link(fun() -> receive go -> send_squares(Rcv, 0, Per) end end)
          || _ <- lists:seq(1, Senders)],
    [P ! go || P <- Ps],
    receive {done, _} -> ok end.

%% ---- spawn ---------------------------------------------------------

spawn_all(N) ->
    Self = self(),
    [spawn(fun() -> Self ! done end) || _ <- lists:seq(1, N)],
    wait_done(N).

wait_done(0) -> ok;
wait_done(K) -> receive done -> wait_done(K - 1) end.

spawn_seq(0) -> ok;
spawn_seq(K) ->
    Self = self(),
    Pid = spawn(fun() -> Self ! {done, self()} end),
    receive {done, Pid} -> spawn_seq(K - 1) end.

%% ---- gen_server call -----------------------------------------------

init([]) -> {ok, 0}.
handle_call({echo, X}, _From, S) -> {reply, X, S}.
handle_cast(_, S) -> {noreply, S}.

call(N) ->
    {ok, Server} = gen_server:start_link(?MODULE, [], []),
    T0 = now_ns(),
    call(Server, N),
    T1 = now_ns(),
    gen_server:stop(Server),
    {elapsed, (T1 - T0) / 1.0e9}.

call(_, 0) -> ok;
call(Server, K) ->
    K = gen_server:call(Server, {echo, K}),
    call(Server, K - 1).

%% ---- ring ----------------------------------------------------------

ring(N, M) ->
    Self = self(),
    First = lists:foldl(fun(_, Next) -> spawn_link(fun() -> hop(Next, Self) end) end,
                        Self, lists:seq(1, N - 1)),
    %% The ring is First -> ... -> Self -> First: Self is one of the N.
    First ! {token, N * M - 1},
    self_hop(First).

hop(Next, Parent) ->
    receive
        {token, 0} -> Parent ! ring_done, hop(Next, Parent);
        {token, K} -> Next ! {token, K - 1}, hop(Next, Parent);
        stop -> Next ! stop
    end.

self_hop(First) ->
    receive
        {token, 0} -> First ! stop, wait_stop();
        {token, K} -> First ! {token, K - 1}, self_hop(First);
        ring_done -> First ! stop, wait_stop()
    end.

wait_stop() -> receive stop -> ok end.

%% ---- selective receive ---------------------------------------------

selective(Junk, K) ->
    [self() ! {junk, I} || I <- lists:seq(1, Junk)],
    T0 = now_ns(),
    match_loop(K),
    {elapsed, (now_ns() - T0) / 1.0e9}.

match_loop(0) -> ok;
match_loop(K) ->
    self() ! {match, K},
    receive {match, K} -> match_loop(K - 1) end.

selective_ref(Junk, K) ->
    [self() ! {junk, I} || I <- lists:seq(1, Junk)],
    T0 = now_ns(),
    ref_loop(K),
    {elapsed, (now_ns() - T0) / 1.0e9}.

ref_loop(0) -> ok;
ref_loop(K) ->
    Ref = make_ref(),
    self() ! {Ref, K},
    receive {Ref, K} -> ref_loop(K - 1) end.

%% ---- capacity ------------------------------------------------------

capacity(Levels) ->
    erlang:garbage_collect(),
    Mem0 = erlang:memory(processes),
    Rss0 = rss_kib(),
    capacity(Levels, [], 0, Mem0, Rss0).

capacity([], Procs, _, _, _) ->
    [P ! stop || P <- Procs],
    ok;
capacity([L | Ls], Procs, Alive, Mem0, Rss0) ->
    New = [spawn(fun idle/0) || _ <- lists:seq(1, L - Alive)],
    All = New ++ Procs,
    %% Let every new process reach its receive.
    [erlang:yield() || _ <- lists:seq(1, 10)],
    timer:sleep(100),
    Mem = (erlang:memory(processes) - Mem0) / L / 1024,
    Rss = (rss_kib() - Rss0) / L,
    Tag = "memory-" ++ integer_to_list(L),
    io:format("RESULT ~s erlang ~s ~s ~s KiB/proc n=~b reps=1~n",
              [Tag, num(Mem), num(Mem), num(Mem), L]),
    io:format("RESULT ~s erlang-rss ~s ~s ~s KiB/proc n=~b reps=1~n",
              [Tag, num(Rss), num(Rss), num(Rss), L]),
    capacity(Ls, All, L, Mem0, Rss0).

idle() -> receive stop -> ok end.

rss_kib() ->
    {ok, Bin} = file:read_file("/proc/self/status"),
    [Line] = [L || L <- binary:split(Bin, <<"\n">>, [global]),
                   binary:match(L, <<"VmRSS:">>) =/= nomatch],
    [_, Kib | _] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kib).
