using ERCache.Inference;
using ERCache.Internal;
using ERCache.Regional;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>What the delegate got wrong is logged: a failed call after its callers are answered (so a slow log sink
/// cannot change their answer), invalid vectors by kind; failed calls to the tower or the regional store, like invalid
/// vectors, a few lines a minute at most, with the count left out.</summary>
public sealed class FailureLoggingTests
{
    [Fact]
    public async Task A_throwing_tower_is_reported_as_an_error_even_when_logging_it_outlasts_the_deadline()
    {
        // The log sink takes longer than the request's deadline (it moves the clock 1 s while it writes). Logged before
        // the callers were answered, the first failure was reported as a Timeout; now it is the Error it was.
        var clock = new FakeTimeProvider();
        var logger = new SlowLogger(clock, TimeSpan.FromSeconds(1));
        var release = new TaskCompletionSource();
        var tower = new TestTower { Gate = release.Task, Whole = (_, _) => throw new InvalidOperationException("tower down") };
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        options.Models["ctr"].Failover.Enabled = false;
        TestThread.LeaveSynchronizationContext();
        using var cache = EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = tower },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline, Logger = logger });

        var pending = cache.GetAsync("ctr", 7, new float[4]).AsTask(); // the caller now waits for its deadline
        Assert.False(pending.IsCompleted);
        release.SetResult(); // the tower throws on this thread; the deadline passes while the failure is logged
        var result = await pending;

        Assert.Equal(EmbeddingSource.Fallback, result.Source);
        Assert.Equal(InferenceFailureCause.Error, result.FailureCause);
        var entry = Assert.Single(logger.Failures);
        Assert.Contains("tower down", entry, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invalid_vectors_are_logged_by_kind_naming_the_row_and_what_was_found_a_few_lines_a_minute()
    {
        var clock = new FakeTimeProvider();
        var logs = new FakeLogCollector();
        var tower = new TestTower();
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        TestThread.LeaveSynchronizationContext();
        using var cache = EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = tower },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline, Logger = new FakeLogger<EmbeddingCache>(logs) });
        string[] Warnings() => [.. logs.GetSnapshot().Where(r => r.Id.Id == 27).Select(r => r.Message)];
        async Task<InferenceFailureCause> Request(long user) => (await cache.GetAsync("ctr", user, new float[4])).FailureCause;

        // Three kinds, each named with the row and what was found.
        tower.Whole = (b, _) => { b.SetRow(0, [1f, 2f, 3f]); return ValueTask.CompletedTask; };
        Assert.Equal(InferenceFailureCause.InvalidVector, await Request(1));
        tower.Whole = (b, _) => { b.SetRow(0, [1f, 2f, float.PositiveInfinity, 4f]); return ValueTask.CompletedTask; };
        Assert.Equal(InferenceFailureCause.InvalidVector, await Request(2));
        tower.Whole = (_, _) => ValueTask.CompletedTask;
        Assert.Equal(InferenceFailureCause.InvalidVector, await Request(3));
        Assert.Collection(
            Warnings(),
            w => Assert.Contains("model 'ctr' returned an invalid vector in row 0 of a batch of 1: a vector of 3 floats for a model of 4 dimensions", w, StringComparison.Ordinal),
            w => Assert.Contains("value Infinity at index 2", w, StringComparison.Ordinal),
            w => Assert.Contains("the row was never written", w, StringComparison.Ordinal));

        // The same kind again within 10 s is counted, not logged; after 10 s one line says how many were left out.
        tower.Whole = (b, _) => { b.SetRow(0, [1f]); return ValueTask.CompletedTask; };
        for (long user = 10; user < 15; user++)
        {
            await Request(user);
        }

        Assert.Equal(3, Warnings().Length);
        clock.Advance(LogThrottle.Interval);
        await Request(20);
        Assert.Equal(4, Warnings().Length);
        Assert.Contains("a vector of 1 floats for a model of 4 dimensions", Warnings()[3], StringComparison.Ordinal);
        Assert.Contains("(5 more of this kind since the last such line.)", Warnings()[3], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_tower_failing_every_call_logs_a_few_lines_a_minute_with_the_count_left_out()
    {
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        options.Models["ctr"].Inference.CircuitBreaker.Enabled = false; // else it would stop the calls, and the lines
        var tower = new TestTower { Whole = (_, _) => throw new InvalidOperationException("tower down") };
        using var host = new ReloadableCache(options, _ => tower, dispatcher: InferenceDispatcher.Inline);
        string[] Lines() => host.Logged(1);
        async Task FailAsync(long first, int users)
        {
            for (long user = first; user < first + users; user++)
            {
                Assert.Equal(InferenceFailureCause.Error, (await host.Cache.GetAsync("ctr", user, new float[4])).FailureCause);
            }
        }

        await FailAsync(1, 3); // three failed calls: one line
        Assert.Contains("(0 more failed calls since the last such line.)", Assert.Single(Lines()), StringComparison.Ordinal);
        Assert.Equal("tower down", host.Logs.GetSnapshot().Single(r => r.Id.Id == 1).Exception?.Message);

        host.Clock.Advance(LogThrottle.Interval - TimeSpan.FromTicks(1));
        await FailAsync(4, 1);
        Assert.Single(Lines());
        host.Clock.Advance(TimeSpan.FromTicks(1));
        await FailAsync(5, 1);
        Assert.Equal(2, Lines().Length);
        Assert.Contains("(3 more failed calls since the last such line.)", Lines()[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Calls_past_their_hard_timeout_log_a_few_lines_a_minute_with_the_count_left_out()
    {
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        var inference = options.Models["ctr"].Inference;
        inference.CircuitBreaker.Enabled = false;
        inference.HardTimeout = inference.Timeout * 2;
        var tower = new TestTower { Whole = (_, _) => throw new InvalidOperationException("tower down") };
        using var host = new ReloadableCache(options, _ => tower, dispatcher: InferenceDispatcher.Inline);
        string[] Lines() => host.Logged(2);
        Assert.Equal(InferenceFailureCause.Error, (await host.Cache.GetAsync("ctr", 0, new float[4])).FailureCause);
        Assert.Single(host.Logged(1)); // an error's line does not hold back the first hard timeout's
        tower.Whole = async (_, token) => await Task.Delay(Timeout.InfiniteTimeSpan, token); // until cancelled
        async Task TimeOutAsync(long user)
        {
            var pending = host.Cache.GetAsync("ctr", user, new float[4]).AsTask();
            host.Clock.Advance(inference.HardTimeout.Value); // the caller's deadline, then the call's hard timeout
            Assert.Equal(InferenceFailureCause.Timeout, (await pending).FailureCause);
            await Poll.Until(() => host.Cache.GetInFlight("ctr") == 0, "the call did not end at its hard timeout");
        }

        await TimeOutAsync(1);
        await Poll.Until(() => Lines().Length == 1, "the hard timeout was not logged");
        await TimeOutAsync(2);
        await TimeOutAsync(3);
        host.Clock.Advance(LogThrottle.Interval);
        await TimeOutAsync(4);
        await Poll.Until(() => Lines().Length == 2, "the hard timeout after the interval was not logged");
        Assert.Contains("(2 more since the last such line.)", Lines()[1], StringComparison.Ordinal);
        Assert.Single(host.Logged(1)); // a hard timeout is not an error of the tower's
    }

    [Fact]
    public async Task A_regional_store_that_is_down_logs_a_few_lines_a_minute_with_the_count_left_out()
    {
        var options = new ERCacheOptions
        {
            Models = { ["ctr"] = CacheFixture.DefaultModel(4) },
            Regional = { CircuitBreaker = new CircuitBreakerOptions { Enabled = false }, FlushInterval = TimeSpan.FromMinutes(1) },
        };
        using var host = new ReloadableCache(options, dispatcher: InferenceDispatcher.Inline, store: new ThrowingRegionalStore());
        string[] Lines() => host.Logged(20);
        async Task MissAsync(long first, int users)
        {
            for (long user = first; user < first + users; user++)
            {
                Assert.Equal(EmbeddingSource.Fresh, (await host.Cache.GetAsync("ctr", user, new float[4])).Source); // the lookup failed
            }
        }

        await MissAsync(1, 3);
        Assert.Contains("The regional store failed a read;", Assert.Single(Lines()), StringComparison.Ordinal);
        Assert.Contains("(0 more failed calls since the last such line.)", Lines()[0], StringComparison.Ordinal);

        host.Clock.Advance(LogThrottle.Interval);
        await MissAsync(4, 1);
        Assert.Equal(2, Lines().Length);
        Assert.Contains("(2 more failed calls since the last such line.)", Lines()[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_channel_that_cannot_be_subscribed_logs_its_retries_a_few_lines_a_minute_with_the_count_left_out()
    {
        var store = new FailingSubscriptions(new InMemoryRegionalStore(), failures: int.MaxValue);
        using var host = new ReloadableCache(
            new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } }, dispatcher: InferenceDispatcher.Inline, store: store);
        string[] Lines() => host.Logged(20);
        async Task RetryAsync()
        {
            int attempts = store.Attempts;
            host.Clock.Advance(RegionalInvalidator.RetryInterval);
            await Poll.Until(() => store.Attempts == attempts + 1, "the subscription was not retried"); // the attempt before is logged
        }

        await host.Cache.WhenReadyAsync(); // the first attempt failed
        Assert.Contains("The regional store failed a subscribe;", Assert.Single(Lines()), StringComparison.Ordinal);
        for (int retry = 1; retry <= 9; retry++)
        {
            await RetryAsync(); // attempts at 1 s to 9 s: counted
        }

        Assert.Single(Lines());
        await RetryAsync();
        await RetryAsync(); // the attempt at 10 s is logged by now
        Assert.Equal(2, Lines().Length);
        Assert.Contains("(9 more failed calls since the last such line.)", Lines()[1], StringComparison.Ordinal);
    }

    /// <summary>A sink that takes <paramref name="delay"/> of the test's clock to write an entry with an exception.</summary>
    private sealed class SlowLogger(FakeTimeProvider clock, TimeSpan delay) : ILogger
    {
        public List<string> Failures { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (exception is not null)
            {
                clock.Advance(delay);
                Failures.Add($"{formatter(state, exception)} {exception?.Message}");
            }
        }
    }
}
