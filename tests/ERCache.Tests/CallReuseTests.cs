using Microsoft.Extensions.Time.Testing;
using ERCache.Inference;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>
/// The scheduler keeps a finished call's token source, timer and batch buffers for the next call. Nothing of one call
/// may leak into the next: not a cancellation, not a failed row, not another user's vector.
/// </summary>
public sealed class CallReuseTests
{
    private static readonly TimeSpan HardTimeout = TimeSpan.FromSeconds(1);

    /// <summary>A cache whose calls run inline, on the caller's thread, with a hard limit of <see cref="HardTimeout"/>.</summary>
    private static CacheFixture InlineWithHardLimit() => new(m => { m.Inference.RunInline = true; m.Inference.HardTimeout = HardTimeout; });

    /// <summary>Moves the clock through one hard limit while a synchronous tower computes on the caller's thread: whether
    /// the call's token was cancelled half-way, and at the limit.</summary>
    private static (bool AtHalf, bool AtLimit) CancelledThroughOneLimit(CacheFixture f, CancellationToken token)
    {
        f.Clock.Advance(HardTimeout / 2);
        bool atHalf = token.IsCancellationRequested;
        f.Clock.Advance(HardTimeout / 2);
        return (atHalf, token.IsCancellationRequested);
    }

    /// <summary>Answers a call of one user with that user's vector.</summary>
    private static ValueTask Answer(InferenceBatch batch)
    {
        TestTower.Fill(batch.GetRow(0).Span, batch.UserIds.Span[0], 0);
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task A_reused_call_is_not_cancelled_by_the_previous_calls_hard_limit()
    {
        using var f = InlineWithHardLimit();
        var seen = new List<bool>();
        f.Tower.Whole = (batch, ct) =>
        {
            seen.Add(ct.IsCancellationRequested);
            return Answer(batch);
        };

        Assert.Equal(EmbeddingSource.Fresh, (await f.GetAsync(1)).Result.Source);
        f.Clock.Advance(HardTimeout * 3); // past the first call's hard limit, with no call running
        Assert.Equal(EmbeddingSource.Fresh, (await f.GetAsync(2)).Result.Source);

        Assert.Equal([false, false], seen);
    }

    [Fact]
    public async Task A_reused_call_is_still_cancelled_at_its_own_hard_limit()
    {
        using var f = InlineWithHardLimit();
        bool cancelledAtHalf = true, cancelledAtLimit = false;
        f.Tower.Whole = (batch, ct) =>
        {
            if (batch.UserIds.Span[0] == 2)
            {
                (cancelledAtHalf, cancelledAtLimit) = CancelledThroughOneLimit(f, ct);
            }

            return Answer(batch);
        };

        await f.GetAsync(1); // a quick call: its token source and timer are kept for the next
        await f.GetAsync(2);

        Assert.False(cancelledAtHalf);
        Assert.True(cancelledAtLimit);
    }

    [Fact]
    public async Task A_timer_set_for_an_earlier_calls_limit_fires_during_a_later_call_without_cancelling_it()
    {
        using var f = InlineWithHardLimit();
        bool cancelledPastFirstLimit = true, cancelledAtOwnLimit = false;
        f.Tower.Whole = (batch, ct) =>
        {
            // User 1's call ends three quarters into its limit, and the timer set for that limit stays armed. User 2's
            // call starts then: the timer fires a quarter of a limit into it, and must wait for user 2's own limit.
            if (batch.UserIds.Span[0] == 1)
            {
                f.Clock.Advance(HardTimeout * 3 / 4);
            }
            else
            {
                (cancelledPastFirstLimit, cancelledAtOwnLimit) = CancelledThroughOneLimit(f, ct);
            }

            return Answer(batch);
        };

        await f.GetAsync(1);
        await f.GetAsync(2);

        Assert.False(cancelledPastFirstLimit);
        Assert.True(cancelledAtOwnLimit);
    }

    [Fact]
    public async Task After_the_timer_fired_with_no_call_running_the_next_call_is_still_cancelled_at_its_limit()
    {
        using var f = InlineWithHardLimit();
        bool cancelledAtLimit = false;
        f.Tower.Whole = (batch, ct) =>
        {
            if (batch.UserIds.Span[0] == 2)
            {
                f.Clock.Advance(HardTimeout);
                cancelledAtLimit = ct.IsCancellationRequested;
            }

            return Answer(batch);
        };

        await f.GetAsync(1);
        f.Clock.Advance(HardTimeout * 2); // the timer set for user 1's limit fires while nothing runs
        await f.GetAsync(2);

        Assert.True(cancelledAtLimit);
    }

    [Fact]
    public async Task A_timer_callback_that_runs_after_its_call_was_disposed_changes_nothing()
    {
        var clock = new HeldCallbackTimeProvider();
        var policy = ModelPolicy.From("m", CacheFixture.DefaultModel(4));
        var batch = new InferenceBatch("m", "v1", 4, [1L]);
        var call = new DelegateCall(clock);
        call.Start(new DelegateInference((_, _) => ValueTask.CompletedTask), batch, policy, clock.GetTimestamp());
        await call.RunAsync(call.Token);

        call.Dispose(); // ended and disposed without a reset, as when the scheduler is disposed meanwhile
        var late = Record.Exception(clock.RunCallbacks); // the system timer may run a callback it had already dispatched

        Assert.Null(late);
        Assert.True(clock.Disposed);
        batch.Release();
    }

    [Fact]
    public async Task A_call_the_timer_decided_to_cancel_is_not_offered_for_reuse()
    {
        var clock = new FakeTimeProvider();
        var model = CacheFixture.DefaultModel(4);
        model.Inference.HardTimeout = HardTimeout;
        var policy = ModelPolicy.From("m", model);
        var batch = new InferenceBatch("m", "v1", 4, [1L]);
        using var call = new DelegateCall(clock);
        call.Start(new DelegateInference((_, _) => ValueTask.CompletedTask), batch, policy, clock.GetTimestamp());
        await call.RunAsync(call.Token); // the delegate has answered; the invoker has not yet asked to reuse the call
        bool? offered = null;
        call.CancellationDecided = () => offered = call.TryReset(); // the invoker's end of the call, in the timer's window

        clock.Advance(HardTimeout); // the call's limit: the timer decides to cancel, then cancels

        // Reused, the token source would have been reset for the next call and then cancelled under it.
        Assert.False(offered);
        Assert.True(call.Token.IsCancellationRequested);
        batch.Release();
    }

    [Fact]
    public async Task Quick_calls_in_a_row_set_the_hard_limit_timer_once()
    {
        var clock = new CountingTimeProvider();
        var model = CacheFixture.DefaultModel(4);
        model.Inference.RunInline = true;
        model.Inference.HardTimeout = HardTimeout;
        var tower = new TestTower();
        TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
        await using var cache = EmbeddingCache.Create(
            new ERCacheOptions { Models = { [CacheFixture.Model] = model } }, new Dictionary<string, IEmbeddingInference> { [CacheFixture.Model] = tower },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline });

        for (long user = 1; user <= 100; user++)
        {
            Assert.Equal(EmbeddingSource.Fresh, (await cache.GetAsync(CacheFixture.Model, user, new float[4])).Source);
        }

        // Each call used to set the timer as it started and stop it as it ended: 200 changes.
        Assert.Equal(100, tower.CallCount);
        Assert.InRange(clock.TimerChanges, 0, 2);
    }

    [Fact]
    public async Task A_reused_batch_forgets_failed_rows_and_the_vectors_of_earlier_users()
    {
        using var f = new CacheFixture(m => m.Inference.RunInline = true);
        var batches = new List<InferenceBatch>();
        f.Tower.Whole = (batch, _) =>
        {
            batches.Add(batch);
            var users = batch.UserIds.Span;
            switch (batches.Count)
            {
                case 1:
                    batch.Fail(0); // user 1 fails
                    break;
                case 2:
                    TestTower.Fill(batch.GetRow(0).Span, users[0], 0); // user 2 succeeds in the same row
                    break;
                default:
                    TestTower.Fill(batch.GetRow(1).Span, users[1], 0); // row 0 (user 3) is left unwritten
                    break;
            }

            return ValueTask.CompletedTask;
        };

        var failed = await f.GetAsync(1);
        var fresh = await f.GetAsync(2);
        var vectors = new float[8];
        var results = new EmbeddingResult[2];
        await f.Cache.GetManyAsync(CacheFixture.Model, new long[] { 3, 4 }, vectors, results);

        Assert.True(batches.Count == 3 && ReferenceEquals(batches[0], batches[1]) && ReferenceEquals(batches[1], batches[2]), "the batch was not reused");
        Assert.Equal(InferenceFailureCause.Error, failed.Result.FailureCause);
        Assert.Equal(EmbeddingSource.Fresh, fresh.Result.Source);
        Assert.Equal((EmbeddingSource.Fallback, InferenceFailureCause.InvalidVector), (results[0].Source, results[0].FailureCause)); // not user 2's vector
        Assert.Equal(EmbeddingSource.Fresh, results[1].Source);
        Assert.True(TestTower.BelongsTo(vectors.AsSpan(4, 4), 4));
        Assert.Equal(2, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Direct)); // users 2 and 4 only
    }
}

/// <summary>A manual clock that counts how often its timers are set or stopped after they were made.</summary>
internal sealed class CountingTimeProvider : FakeTimeProvider
{
    private int _changes;

    public int TimerChanges => Volatile.Read(ref _changes);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        new CountingTimer(base.CreateTimer(callback, state, dueTime, period), this);

    private sealed class CountingTimer(ITimer inner, CountingTimeProvider owner) : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            Interlocked.Increment(ref owner._changes);
            return inner.Change(dueTime, period);
        }

        public void Dispose() => inner.Dispose();

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}

/// <summary>The system clock, with timers that never fire on their own: the test runs their callbacks, also after they
/// were disposed (as a system timer may run a callback it had already dispatched), and a disposed timer's
/// <see cref="ITimer.Change"/> throws, as <see cref="System.Threading.Timer"/>'s does.</summary>
internal sealed class HeldCallbackTimeProvider : TimeProvider
{
    private readonly List<HeldTimer> _timers = [];

    public bool Disposed => _timers.All(t => t.IsDisposed);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new HeldTimer(callback, state);
        _timers.Add(timer);
        return timer;
    }

    public void RunCallbacks()
    {
        foreach (var timer in _timers)
        {
            timer.Run();
        }
    }

    private sealed class HeldTimer(TimerCallback callback, object? state) : ITimer
    {
        public bool IsDisposed { get; private set; }

        public void Run() => callback(state);

        public bool Change(TimeSpan dueTime, TimeSpan period) =>
            IsDisposed ? throw new ObjectDisposedException(nameof(HeldTimer)) : true;

        public void Dispose() => IsDisposed = true;

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
