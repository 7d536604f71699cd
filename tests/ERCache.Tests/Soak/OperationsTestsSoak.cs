using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using static ERCache.Tests.OperationsTests;

namespace ERCache.Tests;

/// <summary>The real-thread and real-clock tests of <see cref="OperationsTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class OperationsTestsSoak
{
    /// <summary>
    /// Readers, a remover and a pusher on the same users at once. Every vector carries the user and a stamp: the
    /// user's epoch when inference started, or the epoch a push wrote. An operation bumps the user's epoch before it
    /// starts and publishes it as the floor once it has returned; a read that begins after that must never be served
    /// an older stamp, and no read may ever get another user's vector.
    /// </summary>
    [Theory]
    [InlineData(EvictionStrategy.Lru)]
    [InlineData(EvictionStrategy.Sieve)]
    [InlineData(EvictionStrategy.MemoryCache)]
    public async Task Hammer_no_removed_or_replaced_vector_is_served_afterwards_and_no_vector_reaches_another_user(EvictionStrategy eviction)
    {
        const int Users = 32, Readers = 4, ReadsPerReader = 15_000, Operations = 3_000;
        var epoch = new int[Users];
        var floor = new int[Users];
        using var f = new CacheFixture(m =>
        {
            m.Direct.Eviction = eviction;
            m.Direct.Capacity = 24; // evicting too
            m.Inference.Timeout = TimeSpan.FromMinutes(1);
        });
        f.Tower.Whole = (batch, _) =>
        {
            for (int i = 0; i < batch.Count; i++)
            {
                long user = batch.UserIds.Span[i];
                TestTower.Fill(batch.GetRow(i).Span, user, Volatile.Read(ref epoch[user]));
            }

            return ValueTask.CompletedTask;
        };

        int violations = 0, foreign = 0;
        string? firstProblem = null;
        var readers = Enumerable.Range(0, Readers).Select(r => Task.Run(async () =>
        {
            var random = new Random(r);
            var vector = new float[4];
            for (int i = 0; i < ReadsPerReader; i++)
            {
                int user = random.Next(Users);
                int least = Volatile.Read(ref floor[user]);
                var result = await f.Cache.GetAsync(Model, user, vector);
                if (!TestTower.BelongsTo(vector, user))
                {
                    Interlocked.Increment(ref foreign);
                    firstProblem ??= $"user {user} got [{string.Join(", ", vector)}] ({result.Source})";
                }
                else if (result.Source is EmbeddingSource.Direct or EmbeddingSource.Fresh && TestTower.GenerationOf(vector) < least)
                {
                    Interlocked.Increment(ref violations);
                    firstProblem ??= $"user {user}: stamp {TestTower.GenerationOf(vector)} served after the floor reached {least} ({result.Source})";
                }
            }
        })).ToArray();

        var operations = Task.Run(async () =>
        {
            var random = new Random(99);
            for (int i = 0; i < Operations; i++)
            {
                int user = random.Next(Users);
                int next = Interlocked.Increment(ref epoch[user]);
                if (random.Next(2) == 0)
                {
                    await f.Cache.RemoveAsync(Model, user);
                }
                else
                {
                    f.Cache.SetVector(Model, user, VectorOf(user, next));
                }

                Volatile.Write(ref floor[user], next);
            }
        });

        await Task.WhenAll([.. readers, operations]);
        Assert.True(foreign == 0 && violations == 0, $"{foreign} foreign vectors, {violations} stale ones; first: {firstProblem}");
        Assert.InRange(f.Cache.GetEntryCount(Model, TierKind.Direct), 0, 24);
        Assert.Equal(0, f.Cache.GetPendingUsers(Model));
    }
}
