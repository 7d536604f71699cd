using ERCache.Inference;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The real-thread tests of <see cref="DeadlineAlarmTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class DeadlineAlarmTestsSoak
{
    [Fact]
    public async Task Callers_creating_joining_and_timing_out_on_several_threads_get_their_own_user_and_leave_nothing_linked()
    {
        // Four callers (two by two on the same users) miss on 32 users while calls end on pool threads after a random
        // number of yields and a fifth thread moves the clock, so deadlines pass before, during and after calls, with
        // creators and joiners mixed.
        // Every fourth call outlasts the 50 ms timeout (it waits until the clock moved 60 ms), so deadlines pass during
        // calls however the threads are scheduled.
        using var f = new CacheFixture(m => m.Inference.MaxConcurrency = 8, dispatcher: InferenceDispatcher.ThreadPool);
        const int Callers = 4, Requests = 1500;
        int running = Callers, calls = 0;
        f.Tower.Whole = async (batch, _) =>
        {
            var slowUntil = f.Clock.GetUtcNow() + TimeSpan.FromMilliseconds(60);
            bool slow = Interlocked.Increment(ref calls) % 4 == 0;
            for (int yields = Random.Shared.Next(30); yields > 0 || (slow && f.Clock.GetUtcNow() < slowUntil && Volatile.Read(ref running) > 0); yields--)
            {
                await Task.Yield();
            }

            for (int i = 0; i < batch.Count; i++)
            {
                TestTower.Fill(batch.GetRow(i).Span, batch.UserIds.Span[i], 1);
            }
        };
        var sources = new int[Callers, 8];
        var timeouts = new int[Callers];

        var callers = Enumerable.Range(0, Callers).Select(c => Task.Run(async () =>
        {
            var rng = new Random(c % 2); // two callers draw each sequence of users, so joins happen however threads run
            var buffer = new float[4];
            try
            {
                for (int r = 0; r < Requests; r++)
                {
                    long user = rng.Next(32);
                    Array.Clear(buffer);
                    var result = await f.Cache.GetAsync(CacheFixture.Model, user, buffer);
                    sources[c, (int)result.Source]++;
                    timeouts[c] += result.FailureCause == InferenceFailureCause.Timeout ? 1 : 0;
                    Assert.True(!result.HasVector || TestTower.BelongsTo(buffer, user), $"user {user} got another user's vector ({result.Source})");
                    Assert.True(result.HasVector || buffer.All(x => x == 0), "a caller answered without a vector had its buffer written");
                }
            }
            finally
            {
                Interlocked.Decrement(ref running);
            }
        })).ToArray();
        var clock = Task.Run(async () =>
        {
            while (Volatile.Read(ref running) > 0)
            {
                f.Clock.Advance(TimeSpan.FromMilliseconds(7)); // the timeout is 50 ms
                await Task.Yield();
            }
        });
        await Task.WhenAll(callers).WaitAsync(TimeSpan.FromMinutes(2));
        await clock.WaitAsync(TimeSpan.FromMinutes(1));
        await f.Cache.WhenIdleAsync(CacheFixture.Model).WaitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal((0, 0), (f.Cache.GetAlarmCount(CacheFixture.Model), f.Cache.GetPendingUsers(CacheFixture.Model)));
        Assert.True(timeouts.Sum() > 0, "no deadline passed during a call: the alarm was not exercised");
        Assert.True(Enumerable.Range(0, Callers).Sum(c => sources[c, (int)EmbeddingSource.Fresh]) > 0);
        Assert.True(f.Metrics.Sum("ercache.inference.coalesced", ("model", CacheFixture.Model)) > 0, "no caller joined another's inference");
    }
}
