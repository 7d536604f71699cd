namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Chains per-model registrations after <c>AddERCache</c>.</summary>
public interface IERCacheBuilder
{
    /// <summary>The service collection ERCache was added to.</summary>
    IServiceCollection Services { get; }

    /// <summary>The configuration section the cache binds (<c>ERCache</c> unless <c>AddERCache</c> was given another); an
    /// adapter reads its per-model subsection under <c>{SectionPath}:Models:{name}</c>.</summary>
    string SectionPath { get; }
}
